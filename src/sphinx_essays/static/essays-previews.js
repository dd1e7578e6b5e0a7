/* Infrastructure Essays: hover, focus and tap previews of terms and essays.
 *
 * Each link inside <span class="kb-ref kb-ref-N"> (a term, an essay, or the
 * sources of a citation) has a hidden preview block
 * #kb-preview-N in the page; a link inside <span class="kb-ref kb-ref-here">
 * is to a term defined on this page, previewed from that definition. The link is described by it (aria-describedby),
 * and a tooltip shows a copy of it:
 *   - on mouse hover, staying open while the pointer is over the tooltip;
 *   - on keyboard focus, placed right after the link so Tab reaches its links;
 *   - on a first tap on touch screens (a second tap follows the link).
 * Escape closes it. No inline styles or scripts: CSP-safe.
 */
(function () {
  "use strict";

  const tip = document.createElement("span");
  tip.className = "kb-tooltip";
  tip.id = "kb-tooltip";
  tip.setAttribute("role", "tooltip");
  tip.hidden = true;

  let current = null;
  let hideTimer = null;
  let lastPointer = "mouse";

  function place(link) {
    const box = link.getBoundingClientRect();
    const width = Math.min(384, document.documentElement.clientWidth - 16);
    const left = Math.max(
      8,
      Math.min(box.left, document.documentElement.clientWidth - width - 8),
    );
    tip.style.width = width + "px";
    tip.style.left = left + "px";
    const below = box.bottom + 6;
    tip.style.top = below + "px";
    const height = tip.getBoundingClientRect().height;
    const above = box.top - height - 6;
    let top = below;
    if (below + height > window.innerHeight - 8) {
      // No room below: above the link if it fits there, else as low as it
      // fits in the window. A fixed box is never scrolled into view, so any
      // part of it outside the window, and its links, would be out of reach.
      top = above >= 8 ? above : Math.max(8, window.innerHeight - height - 8);
    }
    tip.style.top = top + "px";
  }

  function show(link, preview) {
    window.clearTimeout(hideTimer);
    if (current !== link) {
      tip.replaceChildren(
        ...Array.from(preview.childNodes, (node) => node.cloneNode(true)),
      );
      link.after(tip);
      current = link;
    }
    tip.hidden = false;
    place(link);
  }

  function hide() {
    window.clearTimeout(hideTimer);
    tip.hidden = true;
    current = null;
  }

  function hideSoon() {
    window.clearTimeout(hideTimer);
    hideTimer = window.setTimeout(hide, 250);
  }

  function attach(link, preview) {
    link.setAttribute("aria-describedby", preview.id);
    link.addEventListener("pointerdown", (event) => {
      lastPointer = event.pointerType;
    });
    link.addEventListener("mouseenter", () => show(link, preview));
    link.addEventListener("mouseleave", hideSoon);
    link.addEventListener("focus", () => show(link, preview));
    link.addEventListener("blur", (event) => {
      if (!tip.contains(event.relatedTarget)) {
        hideSoon();
      }
    });
    link.addEventListener("click", (event) => {
      if (lastPointer === "touch" && (tip.hidden || current !== link)) {
        event.preventDefault();
        show(link, preview);
      }
    });
  }

  // A term defined on this page (kb-ref-here) has no copy of its definition:
  // the preview is the definition itself, headed by the term, without the
  // definition's "Used in" line.
  function definitionHere(link) {
    const term = document.getElementById(decodeURIComponent(link.hash.slice(1)));
    const definition = term && document.getElementById(term.id + "-definition");
    if (!definition) {
      return null;
    }
    const preview = document.createElement("div");
    preview.id = definition.id;
    const title = document.createElement("p");
    title.className = "kb-preview-title";
    const strong = document.createElement("strong");
    strong.textContent = (term.firstChild && term.firstChild.textContent) || "";
    title.append(strong);
    preview.append(title);
    Array.from(definition.children).forEach((child) => {
      if (!child.classList.contains("glossary-used-in")) {
        preview.append(child.cloneNode(true));
      }
    });
    return preview;
  }

  // A citation of several sources has a link per source; each shows the
  // preview, which lists them all.
  document.querySelectorAll("span.kb-ref").forEach((span) => {
    if (span.classList.contains("kb-ref-here")) {
      span.querySelectorAll("a").forEach((link) => {
        const preview = definitionHere(link);
        if (preview) {
          attach(link, preview);
        }
      });
      return;
    }
    const match = /(?:^|\s)kb-ref-(\d+)(?:\s|$)/.exec(span.className);
    const preview = match && document.getElementById("kb-preview-" + match[1]);
    if (!preview) {
      return;
    }
    span.querySelectorAll("a").forEach((link) => attach(link, preview));
  });

  tip.addEventListener("mouseenter", () => window.clearTimeout(hideTimer));
  tip.addEventListener("mouseleave", hideSoon);
  tip.addEventListener("focusout", (event) => {
    if (!tip.contains(event.relatedTarget) && event.relatedTarget !== current) {
      hideSoon();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !tip.hidden) {
      const link = current;
      hide();
      if (link && tip.contains(document.activeElement)) {
        link.focus();
      }
    }
  });
  document.addEventListener("pointerdown", (event) => {
    if (!tip.hidden && !tip.contains(event.target) && event.target !== current) {
      hide();
    }
  });
  window.addEventListener(
    "scroll",
    () => {
      if (current && !tip.hidden) {
        place(current);
      }
    },
    { passive: true },
  );
})();
