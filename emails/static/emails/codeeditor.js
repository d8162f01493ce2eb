/* Mailroom's code editors (vendored CodeMirror 5) for templates and layouts: the keyboard
 * can leave them, and leaving the page with unsaved edits asks first. */
(function () {
  "use strict";

  // The next (or previous) element Tab would reach, outside the code editor's wrapper.
  function focusBeside(wrapper, forward) {
    const focusable = Array.prototype.filter.call(
      document.querySelectorAll("a[href], button, input, select, textarea, [tabindex]"),
      function (element) {
        return !element.disabled && element.tabIndex >= 0 && element.getClientRects().length &&
          !wrapper.contains(element);
      });
    const after = focusable.filter(function (element) {
      return wrapper.compareDocumentPosition(element) & Node.DOCUMENT_POSITION_FOLLOWING;
    });
    const target = forward ? after[0] : focusable.filter(function (element) {
      return after.indexOf(element) < 0;
    }).pop();
    if (target) target.focus();
  }

  // A CodeMirror on the textarea (which stays the form's source of truth). Tab indents inside
  // the editor; Esc, then Tab (or Shift-Tab), moves focus out of it, so a keyboard user is
  // never trapped (WCAG 2.1.2).
  window.mailroomCodeEditor = function (textarea, mode) {
    let escaped = false;
    const leaveOr = function (command, forward) {
      return function (cm) {
        if (!escaped) return cm.execCommand(command);
        escaped = false;
        focusBeside(cm.getWrapperElement(), forward);
      };
    };
    const editor = window.CodeMirror.fromTextArea(textarea, {
      mode: mode, lineNumbers: true, lineWrapping: true, indentUnit: 2,
      // Editable text a screen reader can read, inside the scrolling region it belongs to.
      inputStyle: "contenteditable",
      // The live preview marks the lines of errors and warnings here (editor.js).
      gutters: ["mailroom-marks", "CodeMirror-linenumbers"],
      extraKeys: {
        "Esc": function () { escaped = true; },
        "Tab": leaveOr("defaultTab", true),
        "Shift-Tab": leaveOr("indentLess", false),
      },
    });
    editor.on("keydown", function (cm, event) {
      if (event.key !== "Escape" && event.key !== "Tab" && event.key !== "Shift") escaped = false;
    });
    const hint = document.createElement("p");
    hint.className = "help mailroom-keyboard-hint";
    hint.id = "mailroom-hint-" + textarea.name;
    hint.textContent = "Tab indents. Esc, then Tab, moves to the next field.";
    editor.getWrapperElement().insertAdjacentElement("afterend", hint);
    const input = editor.getInputField();
    const label = textarea.id && document.querySelector("label[for=" + textarea.id + "]");
    input.setAttribute("aria-describedby", hint.id);
    input.setAttribute("aria-label", label ? label.textContent.replace(/:$/, "") : textarea.name);
    input.setAttribute("aria-multiline", "true");
    input.setAttribute("role", "textbox");
    editor.on("change", function () { editor.save(); });
    return editor;
  };

  // Leaving with unsaved edits asks first; saving (the form's submit) does not, publishing or
  // discarding the saved draft does. Fields inside
  // `ignore` (a selector) are not edits. Returns the function that marks the form edited
  // (for changes the form's own events do not see: the code editors).
  window.mailroomAskBeforeLeaving = function (form, ignore) {
    let unsaved = false;
    const edited = function () { unsaved = true; };
    const onField = function (event) {
      if (!(ignore && event.target.closest && event.target.closest(ignore))) edited();
    };
    form.addEventListener("input", onField);
    form.addEventListener("change", onField);
    form.addEventListener("submit", function () { unsaved = false; });
    // Publish, Discard and Translate act on the saved draft: edits on screen would be lost.
    document.querySelectorAll("form[data-leaves-edits]").forEach(function (other) {
      other.addEventListener("submit", function (event) {
        if (unsaved &&
            !window.confirm("Your unsaved edits will be lost: they are not in the saved draft. Continue?")) {
          event.preventDefault();
          return;
        }
        unsaved = false;
      });
    });
    window.addEventListener("beforeunload", function (event) {
      if (!unsaved) return;
      event.preventDefault();
      event.returnValue = "";
    });
    return edited;
  };
})();
