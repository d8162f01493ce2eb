/* Code editors on the layout's HTML and text. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.CodeMirror) return;
    [["html", "django"], ["text", "text/plain"]].forEach(function (pair) {
      const textarea = document.querySelector("textarea[name=" + pair[0] + "]");
      if (!textarea) return;
      const editor = window.CodeMirror.fromTextArea(textarea, { mode: pair[1], lineNumbers: true, lineWrapping: true });
      editor.on("change", function () { editor.save(); });
    });
  });
})();
