/* The layout editor and the brand settings page: what surrounds every template, with the
 * templates' live preview (emails/emailframe.js): a chosen template and sample inside the
 * unsaved layout, or with the unsaved brand. The layout's HTML and text get code editors
 * (emails/codeeditor.js). The preview panel's data-fields names the form fields it sends. */
(function () {
  "use strict";
  const DEBOUNCE_MS = 300;

  document.addEventListener("DOMContentLoaded", function () {
    const form = document.querySelector("#content-main form");
    const editors = {};
    [["html", "django"], ["text", "text/plain"]].forEach(function (pair) {
      const textarea = document.querySelector("textarea[name=" + pair[0] + "]");
      if (!textarea || !window.CodeMirror) return;
      const editor = window.mailroomCodeEditor(textarea, pair[1]);
      editor.getWrapperElement().dataset.field = pair[0];
      editors[pair[0]] = editor;
    });
    if (!form) return;
    const edited = window.mailroomAskBeforeLeaving(form, "#mailroom-preview, #mailroom-draft");
    Object.keys(editors).forEach(function (name) { editors[name].on("change", edited); });

    const panel = document.getElementById("mailroom-preview");
    if (!panel) return;
    const parts = window.mailroomPreviewParts;
    const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
    const samples = JSON.parse(document.getElementById("mailroom-samples").textContent);
    const templateSelect = document.getElementById("mailroom-template");
    const sampleSelect = document.getElementById("mailroom-sample");
    const payloadBox = document.getElementById("mailroom-payload");
    const holder = document.getElementById("mailroom-frame-holder");
    const email = window.mailroomEmailFrame(holder);
    const htmlForm = parts.hiddenForm(panel.dataset.previewHtmlUrl, csrf,
      panel.dataset.fields.split(" ").concat(["template", "payload", "scheme"]));
    let timer = null;
    const askPreview = parts.latestJSON(panel.dataset.previewUrl, csrf);

    function chosen() { return templateSelect.selectedOptions[0] || null; }
    function fillSamples() {
      const option = chosen();
      const forType = samples[option ? option.dataset.usageType : "Generic"] || samples.Generic;
      sampleSelect.innerHTML = "";
      Object.keys(forType).forEach(function (name) {
        const item = document.createElement("option");
        item.value = item.textContent = name;
        sampleSelect.appendChild(item);
      });
      loadSample();
    }
    function loadSample() {
      const option = chosen();
      const forType = samples[option ? option.dataset.usageType : "Generic"] || samples.Generic;
      const payload = Object.assign({}, forType[sampleSelect.value]);
      if (option && "locale" in payload) payload.locale = option.dataset.locale;
      payloadBox.value = JSON.stringify(payload, null, 2);
      schedule();
    }
    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(refresh, DEBOUNCE_MS);
    }
    const fields = panel.dataset.fields.split(" ");
    function data() {
      const values = { template: templateSelect.value, payload: payloadBox.value };
      fields.forEach(function (name) { values[name] = form.querySelector("[name=" + name + "]").value; });
      return values;
    }
    function refresh() {
      const values = data();
      askPreview(values).then(function (result) {
        if (!result) return;
        parts.showInbox(result);
        document.getElementById("mailroom-text").textContent = result.text;
        parts.showProblems(document.getElementById("mailroom-errors"), result.errors);
      }).catch(function (error) {
        parts.showProblems(document.getElementById("mailroom-errors"), [{ part: "preview", message: error.message }]);
      });
      Object.keys(values).forEach(function (key) { htmlForm.elements[key].value = values[key]; });
      htmlForm.elements.scheme.value = email.scheme();
      email.replace(function (target) { htmlForm.target = target; htmlForm.submit(); });
    }

    Object.keys(editors).forEach(function (name) { editors[name].on("change", schedule); });
    form.addEventListener("input", function (event) {
      if (!event.target.closest("#mailroom-preview") && fields.indexOf(event.target.name) >= 0) schedule();
    });
    holder.addEventListener("mailroom:width", function () {
      document.getElementById("mailroom-inbox").dataset.width = email.width();
    });
    holder.addEventListener("mailroom:scheme", refresh);
    templateSelect.addEventListener("change", fillSamples);
    sampleSelect.addEventListener("change", loadSample);
    payloadBox.addEventListener("input", schedule);
    fillSamples();
  });
})();
