// Live preview only (sphinx_essays.live): the last rebuild's problems, above
// the page. A labelled region, not a dialog: it neither takes nor traps
// focus. "Dismiss" hides it until the problems change; a clean rebuild
// empties the list, and the panel goes.
(() => {
  const root = document.documentElement.dataset.content_root || "./";
  const key = "essays-live-dismissed";

  function render(problems) {
    const digest = JSON.stringify(problems);
    if (!problems.length || sessionStorage.getItem(key) === digest) return;
    const panel = document.createElement("aside");
    panel.className = "essays-live-problems";
    panel.setAttribute("aria-labelledby", "essays-live-title");
    const title = document.createElement("h2");
    title.id = "essays-live-title";
    title.textContent =
      problems.length === 1 ? "1 build problem" : `${problems.length} build problems`;
    panel.append(title);
    const list = document.createElement("ul");
    for (const problem of problems) {
      const item = document.createElement("li");
      const where = document.createElement("code");
      where.textContent = problem.line ? `${problem.file}:${problem.line}` : problem.file;
      item.append(where, " ", problem.message);
      if (problem.fix) {
        const fix = document.createElement("span");
        fix.className = "essays-live-fix";
        fix.textContent = `Fix: ${problem.fix}`;
        item.append(" ", fix);
      }
      list.append(item);
    }
    panel.append(list);
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.textContent = "Dismiss";
    dismiss.addEventListener("click", () => {
      sessionStorage.setItem(key, digest);
      panel.remove();
    });
    panel.append(dismiss);
    const main = document.querySelector("main") || document.body;
    main.prepend(panel);
  }

  fetch(`${root}_live/problems.json`, { cache: "no-store" })
    .then((response) => (response.ok ? response.json() : []))
    .then(render, () => {});
})();
