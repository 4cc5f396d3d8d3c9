// coord dashboard: live sections over server-sent events, and decision forms that submit once.
(function () {
  "use strict";

  // A section the person is working in (a focused field, a note typed) is not replaced under them.
  function busy(el) {
    if (el.contains(document.activeElement) && document.activeElement !== document.body) return true;
    return Array.from(el.querySelectorAll("textarea, input[type=text]")).some(function (f) { return f.value; });
  }

  function setLive(on, text) {
    var badge = document.getElementById("live");
    if (!badge) return;
    badge.classList.toggle("on", on);
    badge.textContent = text;
  }

  var page = document.querySelector("[data-stream]");
  if (page && window.EventSource) {
    var source = new EventSource(page.getAttribute("data-stream"));
    source.addEventListener("open", function () { setLive(true, "● live"); });
    source.addEventListener("error", function () { setLive(false, "○ reconnecting…"); });
    source.addEventListener("update", function (ev) {
      var msg = JSON.parse(ev.data);
      Object.keys(msg.sections || {}).forEach(function (name) {
        var el = document.querySelector('[data-section="' + name + '"]');
        if (!el || busy(el)) return;
        el.innerHTML = msg.sections[name];
      });
      if (msg.phase) document.body.setAttribute("data-phase", msg.phase);
      document.body.setAttribute("data-updates", String(Number(document.body.getAttribute("data-updates") || 0) + 1));
    });
  }

  // One submission per form: the idempotency key in the form makes a repeat harmless on the server,
  // and disabling the buttons keeps a double click from sending it at all.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList || !form.classList.contains("decide")) return;
    if (form.getAttribute("data-sent")) { ev.preventDefault(); return; }
    form.setAttribute("data-sent", "1");
    // disabled later: the clicked button's value is already in the submission by then
    setTimeout(function () {
      form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      var note = form.querySelector(".sending");
      if (note) note.textContent = "recording…";
    }, 0);
  });
})();
