// objrec web page: draw on the canvas or upload a file, POST it to /v1/predict,
// show the top-k classes as bars.
"use strict";

const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const statusEl = document.getElementById("status");
const bars = document.getElementById("bars");
const keyInput = document.getElementById("api-key");
const TOP_K = 5;
let drawing = false;
let last = null;

function clearCanvas() {
  ctx.fillStyle = "#000";  // the digit and clothing data sets are light on black
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

function point(ev) {
  const r = canvas.getBoundingClientRect();
  return [(ev.clientX - r.left) * canvas.width / r.width, (ev.clientY - r.top) * canvas.height / r.height];
}

function stroke(from, to) {
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = Number(document.getElementById("brush").value);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(from[0], from[1]);
  ctx.lineTo(to[0], to[1]);
  ctx.stroke();
}

canvas.addEventListener("pointerdown", (ev) => {
  drawing = true;
  last = point(ev);
  stroke(last, last);
  canvas.setPointerCapture(ev.pointerId);
});
canvas.addEventListener("pointermove", (ev) => {
  if (!drawing) return;
  const p = point(ev);
  stroke(last, p);
  last = p;
});
function endStroke() {
  if (!drawing) return;
  drawing = false;
  predictCanvas();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

document.getElementById("clear").addEventListener("click", () => {
  clearCanvas();
  bars.innerHTML = "";
  setStatus("Draw something or choose a file.");
});
document.getElementById("predict-canvas").addEventListener("click", predictCanvas);

document.getElementById("file").addEventListener("change", (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  const preview = document.getElementById("preview");
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  send(file, file.name);
});

function setStatus(text, isError) {
  statusEl.textContent = text;
  statusEl.classList.toggle("error", Boolean(isError));
}

function predictCanvas() {
  canvas.toBlob((blob) => send(blob, "drawing.png"), "image/png");
}

async function send(blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  const headers = {};
  if (keyInput.value) headers["X-API-Key"] = keyInput.value;
  setStatus("Predicting " + name + "…");
  try {
    const res = await fetch("/v1/predict?top_k=" + TOP_K, { method: "POST", body: form, headers });
    const body = await res.json();
    if (!res.ok) {
      setStatus("Error " + res.status + ": " + (body.error || res.statusText), true);
      return;
    }
    const top = body.predictions[0].top_k;
    showBars(top);
    setStatus("Prediction for " + name + ": " + top[0].label);
  } catch (err) {
    setStatus("Request failed: " + err, true);
  }
}

function showBars(top) {
  bars.innerHTML = "";
  for (const t of top) {
    const li = document.createElement("li");
    const pct = (100 * t.probability).toFixed(1);
    li.innerHTML = '<span class="label"></span><span class="track"><span class="fill"></span></span><span class="pct"></span>';
    li.querySelector(".label").textContent = t.label;
    li.querySelector(".label").title = t.label;
    li.querySelector(".fill").style.width = pct + "%";
    li.querySelector(".fill").style.display = "block";
    li.querySelector(".pct").textContent = pct + "%";
    li.dataset.label = t.label;
    bars.appendChild(li);
  }
}

async function loadInfo() {
  try {
    const health = await (await fetch("/v1/health")).json();
    document.getElementById("key-row").hidden = !health.auth;
    const line = document.getElementById("model-line");
    line.textContent = "Model: " + (health.model || "?") + " (" + health.backend + ")";
    if (!health.auth) {
      const m = await (await fetch("/v1/model")).json();
      line.textContent += " — " + m.n_classes + " classes: " + m.classes.slice(0, 12).join(", ") +
        (m.n_classes > 12 ? ", …" : "") + "; input " + m.input_shape.join("×");
    }
  } catch (err) {
    setStatus("Could not reach the server: " + err, true);
  }
}

clearCanvas();
loadInfo();
