// objrec web page: draw on the canvas or upload a file, POST it to /v1/predict,
// show the top-k classes as bars next to the image as the model saw it. For a
// segmentation model, POST it to /v1/segment and show its masks over the image
// (one colour per class; one colour per object) and the objects found.
"use strict";

const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const statusEl = document.getElementById("status");
const bars = document.getElementById("bars");
const keyInput = document.getElementById("api-key");
const modelInput = document.getElementById("model-input");
const modelInputBox = document.getElementById("model-input-box");
const warningEl = document.getElementById("warning");
const segBox = document.getElementById("seg-box");
const objects = document.getElementById("objects");
const TOP_K = 5;
let task = "classify";  // from /v1/health: "classify" or "segment"
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

function clearResult() {
  bars.innerHTML = "";
  objects.innerHTML = "";
  segBox.hidden = true;
  modelInputBox.hidden = true;
  modelInput.removeAttribute("src");
  warningEl.hidden = true;
  warningEl.textContent = "";
}

document.getElementById("clear").addEventListener("click", () => {
  clearCanvas();
  clearResult();
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

function canvasIsEmpty() {
  // every pixel still the background (black): nothing was drawn
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] || data[i + 1] || data[i + 2]) return false;
  }
  return true;
}

function predictCanvas() {
  if (canvasIsEmpty()) {
    clearResult();
    setStatus("Draw something first.", true);
    return;
  }
  canvas.toBlob((blob) => send(blob, "drawing.png"), "image/png");
}

async function send(blob, name) {
  if (task === "segment") return sendSegment(blob, name);
  const form = new FormData();
  form.append("file", blob, name);
  const headers = {};
  if (keyInput.value) headers["X-API-Key"] = keyInput.value;
  setStatus("Predicting " + name + "…");
  try {
    const res = await fetch("/v1/predict?input_image=1&top_k=" + TOP_K, { method: "POST", body: form, headers });
    let body = {};
    try { body = await res.json(); } catch (e) { /* not JSON: the status says enough */ }
    if (!res.ok) {
      // the bars of the previous image must not read as a prediction for this one
      clearResult();
      setStatus("Error " + res.status + " for " + name + ": " + (body.error || res.statusText), true);
      return;
    }
    const pred = body.predictions[0];
    showBars(pred.top_k);
    showModelInput(pred.input_image);
    const ood = pred.ood || {};
    if (pred.label === "unknown") {
      setStatus("Prediction for " + name + ": unknown (top probability " +
        (100 * ood.max_probability).toFixed(1) + "% is below the server's threshold of " +
        (100 * body.reject_below).toFixed(0) + "%)");
    } else {
      setStatus("Prediction for " + name + ": " + pred.label);
    }
    warningEl.hidden = !ood.warning;
    warningEl.textContent = ood.warning ? "Warning: " + ood.warning : "";
  } catch (err) {
    clearResult();
    setStatus("Request failed: " + err, true);
  }
}

async function sendSegment(blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  const headers = {};
  if (keyInput.value) headers["X-API-Key"] = keyInput.value;
  setStatus("Segmenting " + name + "…");
  try {
    const res = await fetch("/v1/segment?input_image=1", { method: "POST", body: form, headers });
    let body = {};
    try { body = await res.json(); } catch (e) { /* not JSON: the status says enough */ }
    if (!res.ok) {
      clearResult();
      setStatus("Error " + res.status + " for " + name + ": " + (body.error || res.statusText), true);
      return;
    }
    showSegmentation(body, name);
  } catch (err) {
    clearResult();
    setStatus("Request failed: " + err, true);
  }
}

function showSegmentation(body, name) {
  const seg = body.segmentation;
  clearResult();
  for (const img of segBox.querySelectorAll(".base")) img.src = seg.input_image;
  // palette PNGs: label 0 transparent, every class (every object) its own colour
  document.getElementById("seg-classes").src = "data:image/png;base64," + seg.mask;
  document.getElementById("seg-instances").src = "data:image/png;base64," + seg.instance_mask;
  for (const o of seg.instances) {
    const li = document.createElement("li");
    li.innerHTML = '<span class="swatch"></span><span class="what"></span>';
    li.querySelector(".swatch").style.background = body.colors[o.index];
    li.querySelector(".what").textContent = "#" + o.id + " " + o.label + " (score " +
      (100 * o.score).toFixed(0) + "%, " + o.area + " px)";
    li.dataset.label = o.label;
    objects.appendChild(li);
  }
  segBox.hidden = false;
  const n = seg.instances.length;
  setStatus(n + (n === 1 ? " object" : " objects") + " in " + name +
    (n ? ": " + seg.instances.map((o) => o.label).join(", ") : ""));
}

function showModelInput(src) {
  if (!src) {
    modelInputBox.hidden = true;
    return;
  }
  modelInput.src = src;
  modelInputBox.hidden = false;
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
    task = health.task || "classify";
    if (task === "segment") {
      document.getElementById("result-title").textContent = "Segmentation";
      document.getElementById("predict-canvas").textContent = "Segment drawing";
    }
    const line = document.getElementById("model-line");
    line.textContent = "Model: " + (health.model || "?") + " (" + health.backend + ")";
    if (!health.auth) {
      const m = await (await fetch("/v1/model")).json();
      document.getElementById("model-input-size").textContent = m.input_shape.slice(0, 2).join("×");
      line.textContent += " — " + m.n_classes + " classes: " + m.classes.slice(0, 12).join(", ") +
        (m.n_classes > 12 ? ", …" : "") + "; input " + m.input_shape.join("×");
    }
  } catch (err) {
    setStatus("Could not reach the server: " + err, true);
  }
}

clearCanvas();
loadInfo();
