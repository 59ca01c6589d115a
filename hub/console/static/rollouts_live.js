// The rollouts list's live counts: the hub's server-sent events carry every rollout's
// progress at once and at every change; each row (found by its data-release and
// data-group) gets its state, stage and summed counts. A rollout the table does not
// have yet shows a "reload" notice. Without this script the page is complete, not live.
"use strict";

(function () {
  const table = document.getElementById("rollouts");
  if (!table || !window.consoleEvents) return;
  const status = document.getElementById("live-status");

  function rowOf(progress) {
    for (const row of table.querySelectorAll("tbody tr[data-release]")) {
      if (row.dataset.release === progress.release && row.dataset.group === progress.group) {
        return row;
      }
    }
    return null;
  }

  function update(message) {
    for (const progress of message.rollouts) {
      const row = rowOf(progress);
      if (!row) {
        document.getElementById("rollouts-new").hidden = false;
        continue;
      }
      const summed = {};
      for (const stage of progress.stages) {
        for (const [state, count] of Object.entries(stage.counts)) {
          summed[state] = (summed[state] || 0) + count;
        }
      }
      for (const cell of row.querySelectorAll("td[data-count]")) {
        const text = String(summed[cell.dataset.count] || 0);
        if (cell.textContent !== text) cell.textContent = text;
      }
      const state = document.getElementById(row.id + "-state");
      state.textContent = progress.state + (progress.aborted ? " (aborted)" : "");
      state.className = "state state-" + progress.state;
      document.getElementById(row.id + "-stage").textContent =
        (progress.current_stage + 1) + "/" + progress.stages.length + " · " + progress.stage_percent + "%";
    }
    status.textContent = "live";
    status.dataset.state = "on";
  }

  window.consoleEvents(table.dataset.eventsUrl, update, { eventNames: ["progress"] });
})();
