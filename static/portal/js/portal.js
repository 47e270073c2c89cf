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
})();
