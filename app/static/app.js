// Vaultdesk's only plain JS: send the CSRF token with every htmx request.
// The token comes from the page's <meta name="csrf-token">, so no inline script is needed
// and the Content-Security-Policy can forbid inline scripts entirely.
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) {
    event.detail.headers["X-CSRFToken"] = meta.getAttribute("content");
  }
});

// Template picker: choosing a template puts its text into the message box.
document.addEventListener("change", function (event) {
  var select = event.target;
  if (!select.matches || !select.matches("select[data-fills]")) return;
  var option = select.options[select.selectedIndex];
  var target = document.getElementById(select.getAttribute("data-fills"));
  if (option && option.dataset.body && target) {
    target.value = target.value ? target.value + "\n\n" + option.dataset.body : option.dataset.body;
    target.focus();
  }
});

// Keyboard: j/k move between ticket rows, Enter opens one; r jumps to the reply box.
document.addEventListener("keydown", function (event) {
  var target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
  if (event.key === "j" || event.key === "k") {
    var links = Array.prototype.slice.call(document.querySelectorAll("[data-row-link]"));
    if (!links.length) return;
    var index = links.indexOf(document.activeElement);
    index = event.key === "j" ? Math.min(index + 1, links.length - 1) : Math.max(index - 1, 0);
    links[index].focus();
    event.preventDefault();
  } else if (event.key === "r") {
    var reply = document.querySelector("[aria-keyshortcuts~='r']");
    if (reply) { reply.focus(); event.preventDefault(); }
  }
});

// A polled list must not replace rows the agent is working with: skip the refresh while a
// row is ticked for a bulk action or focus is inside the list.
document.addEventListener("htmx:beforeRequest", function (event) {
  var elt = event.detail.elt;
  if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-poll")) return;
  if (elt.querySelector("input[type=checkbox]:checked") || elt.contains(document.activeElement)) {
    event.preventDefault();
  }
});
