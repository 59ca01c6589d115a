// A rollout page's live counts: the hub's server-sent events (one `progress` event at
// once and one at every change) update the figures in place, by their element ids
// (stage-N-STATE, stage-N-members, rollout-state, ...), and enable the buttons the
// rollout's state allows. Without this script the page is complete, only not live.
"use strict";

(function () {
  const root = document.getElementById("rollout");
  if (!root || !window.consoleEvents) return;
  const status = document.getElementById("live-status");

  function setText(id, text) {
    const element = document.getElementById(id);
    if (element && element.textContent !== String(text)) element.textContent = String(text);
  }

  function setEnabled(id, enabled) {
    const button = document.getElementById(id);
    if (button) button.disabled = !enabled;
  }

  function update(progress) {
    if (progress.gone) {
      status.textContent = "rollout gone";
      status.dataset.state = "off";
      return;
    }
    setText("rollout-state", progress.state + (progress.aborted ? " (aborted)" : ""));
    document.getElementById("rollout-state").className = "state state-" + progress.state;
    setText("rollout-stage", progress.current_stage + 1);
    setText("rollout-percent", progress.stage_percent);
    setText("rollout-stage-started", progress.stage_started_at);
    setText("rollout-reason", progress.reason);
    setText("rollout-outside", progress.outside_stages);
    for (const stage of progress.stages) {
      setText("stage-" + stage.index + "-members", stage.members);
      for (const [state, count] of Object.entries(stage.counts)) {
        setText("stage-" + stage.index + "-" + state, count);
      }
      const row = document.getElementById("stage-" + stage.index);
      if (row) {
        row.dataset.current = stage.current ? "true" : "false";
        row.classList.toggle("current", stage.current);
      }
    }
    const final = progress.current_stage + 1 >= progress.stages.length;
    const aborted = progress.aborted;
    setEnabled("pause-button", !aborted && progress.state === "active");
    setEnabled("resume-button", !aborted && (progress.state === "paused" || progress.state === "halted"));
    setEnabled("advance-button", !aborted && progress.state !== "halted" && !final);
    setEnabled("abort-button", !aborted);
    status.textContent = "live";
    status.dataset.state = "on";
    status.dataset.updatedAt = new Date().toISOString();
  }

  window.consoleEvents(root.dataset.eventsUrl, update, { eventNames: ["progress"] });
})();
