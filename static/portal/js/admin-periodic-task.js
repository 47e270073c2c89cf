// django-celery-beat's periodic task form in the admin: beside the crontab choice, the schedule
// in words (its own template did this with an inline script; templates/admin/djcelery/).
(function ($) {
  "use strict";
  var readable = JSON.parse(document.getElementById("readable-crontabs").textContent);
  var help = $(".field-crontab .help");
  var original = help.html();
  $(".field-crontab_translation").hide();
  $(".field-crontab").change(function () {
    var words = readable[$("#id_crontab").val()];
    help.html(original).append("<br>", document.createTextNode("Translation: " + (words || "")));
  });
})(window.django.jQuery);
