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
