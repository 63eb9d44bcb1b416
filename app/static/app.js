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

// Portal live conversation: the polled list sends its version as If-None-Match; a 304
// means nothing changed, so nothing is swapped (the reply box is outside the list anyway).
document.addEventListener("htmx:configRequest", function (event) {
  var elt = event.detail.elt;
  if (elt && elt.dataset && elt.dataset.etag && event.detail.verb === "get") {
    event.detail.headers["If-None-Match"] = '"' + elt.dataset.etag + '"';
  }
});
document.addEventListener("htmx:beforeSwap", function (event) {
  if (event.detail.xhr && event.detail.xhr.status === 304) {
    event.detail.shouldSwap = false;
    event.detail.isError = false;
  }
});

// Portal uploads: drop files onto the drop zone, list the chosen names, show progress.
function vdListFiles(zone) {
  var input = zone.querySelector("input[type=file]");
  var list = zone.querySelector("[data-file-list]");
  if (!input || !list) return;
  list.textContent = "";
  Array.prototype.forEach.call(input.files, function (file) {
    var item = document.createElement("li");
    item.textContent = file.name + " (" + Math.max(1, Math.round(file.size / 1024)) + " KB)";
    list.appendChild(item);
  });
}
document.addEventListener("change", function (event) {
  var zone = event.target.closest && event.target.closest("[data-dropzone]");
  if (zone) vdListFiles(zone);
});
["dragenter", "dragover"].forEach(function (name) {
  document.addEventListener(name, function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (!zone) return;
    event.preventDefault();
    zone.classList.add("dragging");
  });
});
document.addEventListener("dragleave", function (event) {
  var zone = event.target.closest && event.target.closest("[data-dropzone]");
  if (zone && !zone.contains(event.relatedTarget)) zone.classList.remove("dragging");
});
document.addEventListener("drop", function (event) {
  var zone = event.target.closest && event.target.closest("[data-dropzone]");
  if (!zone) return;
  event.preventDefault();
  zone.classList.remove("dragging");
  var input = zone.querySelector("input[type=file]");
  if (!input || !event.dataTransfer || !event.dataTransfer.files.length) return;
  var merged = new DataTransfer();
  Array.prototype.forEach.call(input.files, function (f) { merged.items.add(f); });
  Array.prototype.forEach.call(event.dataTransfer.files, function (f) { merged.items.add(f); });
  input.files = merged.files;
  vdListFiles(zone);
});
document.addEventListener("htmx:xhr:progress", function (event) {
  var form = event.target.closest && event.target.closest("[data-upload-form]");
  var box = form && form.querySelector("[data-progress]");
  if (!box || !event.detail.lengthComputable) return;
  box.hidden = false;
  box.querySelector("progress").value = Math.round((event.detail.loaded / event.detail.total) * 100);
});
document.addEventListener("htmx:afterRequest", function (event) {
  var form = event.target.closest && event.target.closest("[data-upload-form]");
  var box = form && form.querySelector("[data-progress]");
  if (box) box.hidden = true;
});

// --- ticketpage: the agent's ticket page -----------------------------------------------
// Keyboard (the "?" dialog lists them): s status, a assign to me, i internal note,
// r reply (above), j/k next/previous ticket of the list the agent opened it from.
// The list is remembered in sessionStorage when a row link of a ticket list is followed,
// so "next" means the next row of that very list (view, filter and page), per browser tab.
// Keys never fire while typing in a field, with a modifier held, or with a dialog open.
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest("[data-row-link]");
  if (!link) return;
  var rows = Array.prototype.map.call(document.querySelectorAll("[data-row-link]"), function (a) {
    return new URL(a.href, location.href).pathname;
  });
  try { sessionStorage.setItem("vd-ticket-list", JSON.stringify(rows)); } catch (e) { /* private mode */ }
});
function vdTicketStep(step) {
  var rows;
  try { rows = JSON.parse(sessionStorage.getItem("vd-ticket-list") || "[]"); } catch (e) { rows = []; }
  var index = rows.indexOf(location.pathname);
  var next = index < 0 ? null : rows[index + step];
  if (next) location.assign(next);
}
document.addEventListener("keydown", function (event) {
  var page = document.querySelector(".ticket-page");
  if (!page || event.ctrlKey || event.metaKey || event.altKey) return;
  var target = event.target;
  if (target.closest && target.closest("input, textarea, select, [contenteditable], dialog[open]")) return;
  var dialog = document.getElementById("shortcuts");
  if (event.key === "?") {
    if (dialog && dialog.showModal && !dialog.open) dialog.showModal();
  } else if (event.key === "s") {
    var status = document.querySelector("#ticket-header select[name=status]");
    if (status) status.focus();
  } else if (event.key === "a") {
    var mine = document.querySelector("#assign-me-form button");
    if (mine && !mine.disabled) mine.click();
  } else if (event.key === "i") {
    var note = document.querySelector("#composer input[name=visibility][value=internal]");
    var body = document.getElementById("body");
    if (note) note.checked = true;
    if (body) body.focus();
  } else if (event.key === "j" || event.key === "k") {
    vdTicketStep(event.key === "j" ? 1 : -1);
  } else {
    return;
  }
  event.preventDefault();
});
// The 5-second poll also refreshes the facts (out of band): skip it while the agent is
// typing in them, so a tag or a note being written is not replaced under their fingers.
document.addEventListener("htmx:beforeRequest", function (event) {
  var elt = event.detail.elt;
  if (!elt || elt.id !== "ticket-live") return;
  var active = document.activeElement;
  if (active && active.closest && active.closest("[data-live-guard]") &&
      active.matches("input:not([type=hidden]):not([type=checkbox]), textarea")) {
    event.preventDefault();
  }
});
