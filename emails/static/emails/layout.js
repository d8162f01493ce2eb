/* Code editors on the layout's HTML and text (emails/codeeditor.js). */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.CodeMirror) return;
    const form = document.getElementById("layout_form");
    [["html", "django"], ["text", "text/plain"]].forEach(function (pair) {
      const textarea = document.querySelector("textarea[name=" + pair[0] + "]");
      if (!textarea) return;
      const editor = window.mailroomCodeEditor(textarea, pair[1]);
      editor.getWrapperElement().dataset.field = pair[0];
    });
    if (form) {
      const edited = window.mailroomAskBeforeLeaving(form);
      document.querySelectorAll(".CodeMirror").forEach(function (wrapper) {
        wrapper.CodeMirror.on("change", edited);
      });
    }
  });
})();
