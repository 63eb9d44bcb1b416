// Composer drafts (app/tickets/drafts.py, app/web/agent/drafts.py): plain JS, no framework.
//
// A form with data-drafts="<url>" is a composer. While the agent types, its text is saved
// to <url> one second after they pause, and at least every few seconds while they keep
// typing (each save also marks them "typing" for colleagues). On load the newest stored
// draft is put back, unless this tab holds edits that never reached the server (then those
// win and are saved at once): whichever is newer wins. Switching reply/note moves the text
// to the other kind. Sending stops the saving; the server drops the draft with the answer.
(function () {
  "use strict";
  if (window.vdDrafts) return; // a boosted page may run this file again
  window.vdDrafts = true;

  var IDLE_MS = 1000; // save this long after the last keystroke
  var EVERY_MS = 4000; // and at least this often while typing goes on

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function textBox(form) {
    return form.querySelector("textarea[name=body]");
  }

  // The kind a composer drafts: fixed by data-draft-kind, else its reply/note switch.
  function kindOf(form) {
    if (form.dataset.draftKind) return form.dataset.draftKind;
    var chosen = form.querySelector("input[name=visibility]:checked");
    return chosen && chosen.value === "public" ? "reply" : "note";
  }

  // Edits this tab made that the server has not confirmed yet survive a reload here.
  function dirtyKey(form) {
    return "vd-draft-unsaved:" + form.dataset.drafts;
  }
  function remember(form, unsaved) {
    try {
      if (unsaved) window.sessionStorage.setItem(dirtyKey(form), "1");
      else window.sessionStorage.removeItem(dirtyKey(form));
    } catch (e) { /* storage disabled: the server's draft simply wins */ }
  }
  function hasUnsaved(form) {
    try { return window.sessionStorage.getItem(dirtyKey(form)) === "1"; } catch (e) { return false; }
  }

  function statusLine(form) {
    var line = form.querySelector(".draft-status");
    if (!line) {
      line = document.createElement("p");
      line.className = "draft-status muted";
      var box = textBox(form);
      box.parentNode.insertBefore(line, box.nextSibling);
    }
    return line;
  }
  function showStatus(form, html) {
    var holder = document.createElement("div");
    holder.innerHTML = html;
    var fresh = holder.querySelector(".draft-status");
    if (fresh) statusLine(form).replaceWith(fresh);
  }
  function showFailure(form) {
    var line = statusLine(form);
    line.textContent = line.dataset.failed || "\u26a0"; // the partial carries the words
    line.classList.add("draft-failed");
  }

  // keepalive lets the last save finish while the page unloads (reload, closed tab).
  function save(form, replaces, keepalive) {
    var state = form.vdDraft;
    window.clearTimeout(state.timer);
    state.timer = null;
    if (state.sending) return;
    var data = new FormData();
    data.append("csrf_token", csrfToken());
    data.append("kind", kindOf(form));
    data.append("body", textBox(form).value);
    var identity = form.querySelector("select[name=identity_id]");
    if (identity) data.append("identity_id", identity.value);
    if (replaces) data.append("replaces", replaces);
    var edition = state.edition;
    state.last = Date.now();
    window.fetch(form.dataset.drafts, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      keepalive: !!keepalive,
      headers: { "X-CSRFToken": csrfToken(), "HX-Request": "true" },
    }).then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
      return response.text();
    }).then(function (html) {
      if (state.sending) return;
      showStatus(form, html);
      if (edition === state.edition) remember(form, false);
    }).catch(function () {
      if (!state.sending) showFailure(form);
    });
  }

  function schedule(form) {
    var state = form.vdDraft;
    window.clearTimeout(state.timer);
    if (Date.now() - state.last >= EVERY_MS) {
      save(form);
    } else {
      state.timer = window.setTimeout(function () { save(form); }, IDLE_MS);
    }
  }

  function restore(form, draft) {
    if (!form.dataset.draftKind) {
      var radio = form.querySelector(
        "input[name=visibility][value=" + (draft.kind === "reply" ? "public" : "internal") + "]"
      );
      if (radio && !radio.disabled) radio.checked = true;
    }
    var identity = form.querySelector("select[name=identity_id]");
    if (identity && draft.identity_id && identity.value !== String(draft.identity_id) &&
        identity.querySelector('option[value="' + draft.identity_id + '"]')) {
      identity.value = String(draft.identity_id);
      identity.dispatchEvent(new Event("change", { bubbles: true })); // its templates follow
    }
    textBox(form).value = draft.body;
    form.vdDraft.kind = kindOf(form);
    showStatus(form, draft.status);
  }

  function start(form) {
    if (form.vdDraft || !textBox(form)) return;
    form.vdDraft = { timer: null, last: 0, edition: 0, sending: false, kind: kindOf(form) };
    window.fetch(form.dataset.drafts, {
      credentials: "same-origin",
      headers: { "HX-Request": "true", Accept: "application/json" },
    }).then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
      return response.json();
    }).then(function (answer) {
      var wanted = form.dataset.draftKind;
      var draft = (answer.drafts || []).filter(function (d) {
        return !wanted || d.kind === wanted;
      })[0];
      var typed = textBox(form).value;
      if (typed.trim() && hasUnsaved(form)) {
        save(form); // this tab's own newer text wins, and is stored now
      } else if (draft) {
        if (typed !== draft.body || kindOf(form) !== draft.kind) restore(form, draft);
        else showStatus(form, draft.status);
      }
    }).catch(function () { /* no drafts to restore: the composer works as before */ });
  }

  function composerOf(element) {
    var form = element && element.closest ? element.closest("form[data-drafts]") : null;
    return form && form.vdDraft ? form : null;
  }

  document.addEventListener("htmx:load", function (event) {
    var root = event.detail.elt;
    if (!root || !root.querySelectorAll) return;
    if (root.matches && root.matches("form[data-drafts]")) start(root);
    Array.prototype.forEach.call(root.querySelectorAll("form[data-drafts]"), start);
  });

  document.addEventListener("input", function (event) {
    var form = composerOf(event.target);
    if (!form || event.target !== textBox(form) || form.vdDraft.sending) return;
    form.vdDraft.edition += 1;
    remember(form, true);
    schedule(form);
  });

  document.addEventListener("change", function (event) {
    var form = composerOf(event.target);
    if (!form || form.vdDraft.sending) return;
    if (event.target.name === "visibility") {
      var before = form.vdDraft.kind;
      form.vdDraft.kind = kindOf(form);
      if (before !== form.vdDraft.kind && textBox(form).value.trim()) save(form, before);
    } else if (event.target.name === "identity_id" && textBox(form).value.trim()) {
      schedule(form);
    }
  });

  // Leaving with a save still waiting for its pause: send it now.
  window.addEventListener("pagehide", function () {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-drafts]"), function (form) {
      if (form.vdDraft && form.vdDraft.timer) save(form, null, true);
    });
  });

  // Sending: no more saves from this form; the answer's transaction drops the draft.
  document.addEventListener("submit", function (event) {
    var form = composerOf(event.target);
    if (!form) return;
    window.clearTimeout(form.vdDraft.timer);
    form.vdDraft.sending = true; // the unsaved mark stays: a refused answer comes back typed
  }, true);
  // A send that never reached the server leaves the form in place: resume saving.
  document.addEventListener("htmx:sendError", function (event) {
    var form = composerOf(event.detail.elt);
    if (form) { form.vdDraft.sending = false; remember(form, true); schedule(form); }
  });
})();
