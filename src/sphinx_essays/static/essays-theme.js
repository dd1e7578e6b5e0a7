// Our changes to furo's behaviour, loaded at the top of <body> (base.html).

// The colour scheme the reader chose ("light", "dark" or "auto"), set before
// the page paints. Furo does this with an inline script, which a strict
// Content Security Policy refuses.
document.body.dataset.theme = localStorage.getItem("theme") || "auto";

// The drawer buttons (page.html). Furo opens its navigation and contents
// drawers with <label for="checkbox">, which the keyboard cannot reach; the
// buttons flip the same checkboxes, so furo's CSS still does the sliding.
// Escape closes an open drawer and gives focus back to its button.
(() => {
  const buttons = () => document.querySelectorAll("button[data-drawer]");
  const visible = (element) => element.getClientRects().length > 0;

  function sync() {
    for (const button of buttons()) {
      const box = document.getElementById(button.dataset.drawer);
      button.setAttribute("aria-expanded", String(Boolean(box && box.checked)));
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-drawer]");
    if (!button) return;
    const box = document.getElementById(button.dataset.drawer);
    box.checked = !box.checked;
    sync();
    if (box.checked) {
      // The drawer is shown by CSS once the checkbox is checked: move focus
      // into it on the next frame, to its first control that is displayed.
      const drawer = document.getElementById(button.getAttribute("aria-controls"));
      requestAnimationFrame(() => {
        const controls = drawer ? drawer.querySelectorAll("a[href], input, button") : [];
        const first = Array.from(controls).find(visible);
        if (first) first.focus();
      });
    }
  });

  // The overlays behind an open drawer are labels: a click closes it.
  document.addEventListener("change", sync);

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    for (const button of buttons()) {
      const box = document.getElementById(button.dataset.drawer);
      if (box && box.checked && visible(button)) {
        box.checked = false;
        sync();
        button.focus();
      }
    }
  });
})();
