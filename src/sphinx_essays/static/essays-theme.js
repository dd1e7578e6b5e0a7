// The colour scheme the reader chose ("light", "dark" or "auto"), set before
// the page paints. Furo does this with an inline script, which a strict
// Content Security Policy refuses; this file is loaded at the top of <body>.
document.body.dataset.theme = localStorage.getItem("theme") || "auto";
