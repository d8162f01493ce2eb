// The admin's Delivery charts (uPlot, vendored): emails per minute by outcome, and Logto's
// call -> provider p50/p95. Data comes from the page's #delivery-data JSON (no inline script).
(function () {
  "use strict";

  function color(name) {
    var root = document.querySelector(".delivery");
    return getComputedStyle(root).getPropertyValue(name).trim();
  }

  function axes() {
    var fg = getComputedStyle(document.body).color;
    var grid = { stroke: "rgba(128,128,128,0.25)", width: 1 };
    return [
      { stroke: fg, grid: grid, ticks: grid },
      { stroke: fg, grid: grid, ticks: grid, size: 56 },
    ];
  }

  function draw() {
    var data = JSON.parse(document.getElementById("delivery-data").textContent);
    var charts = [];
    var statusEl = document.getElementById("chart-status");
    var latencyEl = document.getElementById("chart-latency");
    function width(el) { return Math.max(280, el.clientWidth); }

    var perMinute = data.perMinute;
    charts.push(new uPlot({
      width: width(statusEl), height: 240,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } } },
      axes: axes(),
      series: [
        {},
        { label: "sent", stroke: color("--series-sent"), width: 2, value: function (u, v) { return v == null ? "—" : v + "/min"; } },
        { label: "failed", stroke: color("--series-failed"), width: 2, value: function (u, v) { return v == null ? "—" : v + "/min"; } },
        { label: "expired", stroke: color("--series-expired"), width: 2, dash: [6, 4], value: function (u, v) { return v == null ? "—" : v + "/min"; } },
      ],
    }, [data.times, perMinute.sent, perMinute.failed, perMinute.expired], statusEl));

    charts.push(new uPlot({
      width: width(latencyEl), height: 240,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, (max || 0) * 1.1)]; } } },
      axes: axes(),
      series: [
        {},
        { label: "p50", stroke: color("--series-p50"), width: 2, spanGaps: false, value: function (u, v) { return v == null ? "—" : v.toFixed(2) + " s"; } },
        { label: "p95", stroke: color("--series-p95"), width: 2, dash: [6, 4], spanGaps: false, value: function (u, v) { return v == null ? "—" : v.toFixed(2) + " s"; } },
      ],
    }, [data.times, data.p50, data.p95], latencyEl));

    var resizing;
    window.addEventListener("resize", function () {
      clearTimeout(resizing);
      resizing = setTimeout(function () {
        charts[0].setSize({ width: width(statusEl), height: 240 });
        charts[1].setSize({ width: width(latencyEl), height: 240 });
      }, 100);
    });
    document.querySelector(".delivery").setAttribute("data-charts", "ready");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
