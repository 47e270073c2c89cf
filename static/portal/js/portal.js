// The portal's own behaviour. Everything works without it; it only adds comfort.
(function () {
  "use strict";
  // An invitation or enrolment link carries its code in the URL fragment, which browsers never
  // send to the server: copy it into the form so nobody has to paste it.
  function fillInvitationCode() {
    var input = document.querySelector("[data-fill-from-hash]");
    if (input && window.location.hash.length > 1 && !input.value) {
      input.value = decodeURIComponent(window.location.hash.slice(1));
      history.replaceState(null, "", window.location.pathname);
    }
  }
  document.addEventListener("DOMContentLoaded", fillInvitationCode);

  // Small behaviours declared by data attributes (the Content-Security-Policy allows no inline
  // event handlers). Delegated from the document, so content swapped in by htmx has them too.
  // data-submit-on-change: a select that submits its form as soon as a choice is made.
  document.addEventListener("change", function (e) {
    var field = e.target;
    if (field.hasAttribute && field.hasAttribute("data-submit-on-change") && field.form) {
      field.form.requestSubmit();
    }
  });
  // data-select-on-click: a read-only field whose whole content is selected for copying.
  document.addEventListener("click", function (e) {
    if (e.target.hasAttribute && e.target.hasAttribute("data-select-on-click")) {
      e.target.select();
    }
  });
  // data-confirm on a form: the question to answer before it is sent.
  document.addEventListener("submit", function (e) {
    var question = e.target.getAttribute && e.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      e.preventDefault();
    }
  });
})();
