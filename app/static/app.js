// Vaultdesk's only plain JS: send the CSRF token with every htmx request.
// The token comes from the page's <meta name="csrf-token">, so no inline script is needed
// and the Content-Security-Policy can forbid inline scripts entirely.
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) {
    event.detail.headers["X-CSRFToken"] = meta.getAttribute("content");
  }
});
