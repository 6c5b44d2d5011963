// The latent explorer's front end (anywidget ES module; also inlined by explorer.export_html).
// The decoder p(x|z)'s pixel probabilities sigmoid(f_theta(z)) are computed here, in the browser,
// from the weights the kernel sent once: Linear -> act -> Linear -> act -> Linear -> sigmoid on
// Float32Arrays. No network, no kernel round trip per pointer move.

const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const MAP_PX = 360, DIGIT_PX = 160, STRIP_N = 10, STRIP_CELL = 40;

function f32(b64) {  // base64 of little-endian float32 -> Float32Array
  const s = atob(b64), bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}

function makeDecoder(spec) {
  const layers = spec.layers.map((l) => ({ w: f32(l.w), b: f32(l.b), nIn: l.n_in, nOut: l.n_out }));
  const act = { silu: (v) => v / (1 + Math.exp(-v)), relu: (v) => (v > 0 ? v : 0), tanh: Math.tanh }[spec.activation];
  const bufs = layers.map((l) => new Float32Array(l.nOut));
  // z (latent_dim numbers) -> 64 pixel probabilities; w is row-major (n_out, n_in) like torch's Linear
  return function decode(z) {
    let h = Float32Array.from(z);
    layers.forEach((l, k) => {
      const out = bufs[k], w = l.w, last = k === layers.length - 1;
      for (let o = 0; o < l.nOut; o++) {
        let s = l.b[o];
        const row = o * l.nIn;
        for (let i = 0; i < l.nIn; i++) s += w[row + i] * h[i];
        out[o] = last ? 1 / (1 + Math.exp(-s)) : act(s);
      }
      h = out;
    });
    return Array.from(h);
  };
}

function el(tag, attrs, parent) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "style") e.style.cssText = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  if (parent) parent.appendChild(e);
  return e;
}

function drawDigit(ctx, probs, x0, y0, size) {
  const cell = size / 8;
  for (let r = 0; r < 8; r++) for (let c = 0; c < 8; c++) {
    const g = Math.round(255 * (1 - probs[8 * r + c]));  // gray_r: ink is dark
    ctx.fillStyle = `rgb(${g},${g},${g})`;
    ctx.fillRect(x0 + c * cell, y0 + r * cell, Math.ceil(cell), Math.ceil(cell));
  }
}

function render({ model, el: host }) {
  const dim = model.get("latent_dim"), lim = model.get("lim"), dims = model.get("dims");
  const decode = makeDecoder(model.get("decoder"));
  const sent = model.get("points");  // {z1, z2, labels}: encoder means of the test digits on the map's two dims
  const pts = { z1: f32(sent.z1), z2: f32(sent.z2), labels: Array.from(f32(sent.labels), Math.round) };
  const z = new Array(dim).fill(0);  // the current latent point (dims not on the map or a slider stay 0)
  const pins = [];  // pinned points (full z vectors); the last two give the strip
  const api = { timings: [], frames: 0 };

  const root = el("div", { "data-testid": "vae-explorer", style: "font: 13px sans-serif; display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start" }, host);
  const left = el("div", {}, root);
  const mapLabel = dim === 2 ? "z1 (horizontal) and z2 (vertical)" : `latent dims ${dims[0] + 1} and ${dims[1] + 1}`;
  el("div", { text: `Encoded test digits (encoder means) on ${mapLabel}: move the pointer to decode, click to pin, arrow keys move the pin` , style: "max-width: 360px; margin-bottom: 4px" }, left);
  const map = el("canvas", { "data-testid": "latent-map", width: MAP_PX, height: MAP_PX, tabindex: "0", role: "application",
    "aria-label": `Latent map, ${mapLabel}, from -${lim} to ${lim}. Move the pointer or click to pick a latent point z; arrow keys move the pinned point.`,
    style: "border: 1px solid #999; cursor: crosshair" }, left);
  const right = el("div", {}, root);
  el("div", { text: "decoder p(x|z): pixel probabilities" }, right);
  const digit = el("canvas", { "data-testid": "digit", width: DIGIT_PX, height: DIGIT_PX, role: "img", "aria-label": "the decoded digit", style: "border: 1px solid #999" }, right);
  const readout = el("div", { "data-testid": "readout", "aria-live": "polite", style: "max-width: 320px; margin-top: 6px; min-height: 3em" }, right);
  const sliderBox = el("div", { style: "margin-top: 6px" }, right);
  const pick = el("label", { text: "test digit # (kernel overlay: q_phi(z|x) and p(z|x)) ", style: "display: block; margin-top: 6px" }, right);
  const digitBox = el("input", { type: "number", min: "-1", max: String(model.get("n_images") - 1), step: "1", value: String(model.get("digit")), "aria-label": "test digit number", style: "width: 5em" }, pick);
  const note = el("div", { "data-testid": "overlay-note", style: "max-width: 320px; margin-top: 4px; color: #555" }, right);
  el("div", { text: "interpolation between the last two pinned points (click two points)", style: "flex-basis: 100%; margin-top: 4px" }, root);
  const strip = el("canvas", { "data-testid": "strip", width: STRIP_N * STRIP_CELL, height: STRIP_CELL, role: "img", "aria-label": "decoded digits on the straight line between the last two pinned points", style: "border: 1px solid #999" }, root);

  const toPx = (v) => ((v + lim) / (2 * lim)) * MAP_PX;
  const toZ = (p) => (p / MAP_PX) * 2 * lim - lim;
  const a = dims[0], b = dims[1];  // the latent dims drawn horizontally and vertically

  // background: the encoded test digits coloured by label, each label written at its cluster's median
  const bg = document.createElement("canvas"); bg.width = MAP_PX; bg.height = MAP_PX;
  const bctx = bg.getContext("2d");
  bctx.fillStyle = "#fff"; bctx.fillRect(0, 0, MAP_PX, MAP_PX);
  bctx.strokeStyle = "#ddd"; bctx.beginPath();
  bctx.moveTo(toPx(0), 0); bctx.lineTo(toPx(0), MAP_PX); bctx.moveTo(0, MAP_PX - toPx(0)); bctx.lineTo(MAP_PX, MAP_PX - toPx(0)); bctx.stroke();
  const byLabel = {};
  pts.labels.forEach((lab, i) => {
    bctx.fillStyle = COLOURS[lab % 10]; bctx.globalAlpha = 0.6;
    bctx.beginPath(); bctx.arc(toPx(pts.z1[i]), MAP_PX - toPx(pts.z2[i]), 2.5, 0, 2 * Math.PI); bctx.fill();
    (byLabel[lab] = byLabel[lab] || []).push(i);
  });
  bctx.globalAlpha = 1; bctx.font = "bold 16px sans-serif"; bctx.textAlign = "center"; bctx.textBaseline = "middle";
  const median = (v) => { const s = [...v].sort((p, q) => p - q); return s[Math.floor(s.length / 2)]; };
  for (const [lab, idx] of Object.entries(byLabel)) {
    const x = toPx(median(idx.map((i) => pts.z1[i]))), y = MAP_PX - toPx(median(idx.map((i) => pts.z2[i])));
    bctx.lineWidth = 3; bctx.strokeStyle = "#fff"; bctx.strokeText(lab, x, y);
    bctx.fillStyle = COLOURS[lab % 10]; bctx.fillText(lab, x, y);
  }
  const mctx = map.getContext("2d"), dctx = digit.getContext("2d"), sctx = strip.getContext("2d");

  // the kernel's overlay for a picked test digit: p(z|x) on a grid (shaded) and q_phi(z|x) (ellipses)
  let overlayImg = null;
  function buildOverlay() {
    const ov = model.get("overlay");
    overlayImg = null;
    if (!ov || !ov.log_post) return;
    const n = ov.n, lp = f32(ov.log_post), c = document.createElement("canvas");
    c.width = n; c.height = n;
    let mx = -Infinity;
    for (const v of lp) mx = Math.max(mx, v);
    const img = c.getContext("2d").createImageData(n, n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {  // lp[i * n + j] at (z1[i], z2[j]); row 0 of the image is the top (largest z2)
      const p = Math.exp(lp[i * n + j] - mx), k = 4 * ((n - 1 - j) * n + i);
      img.data[k] = 40; img.data[k + 1] = 0; img.data[k + 2] = 90; img.data[k + 3] = Math.round(230 * Math.sqrt(p));  // sqrt: the tails stay visible
    }
    c.getContext("2d").putImageData(img, 0, 0);
    overlayImg = { canvas: c, ov };
  }
  function overlayNote() {
    const ov = model.get("overlay");
    note.textContent = ov && ov.q_mean ? `test digit #${ov.digit} (label ${pts.labels[ov.digit]}): red ellipses q_phi(z|x) at 1 and 2 sds` +
      (ov.log_post ? "; purple shading p(z|x) on a grid" : "") : "";
  }

  function drawMap() {
    mctx.drawImage(bg, 0, 0);
    if (overlayImg) {
      const { canvas, ov } = overlayImg, [lo1, hi1, lo2, hi2] = ov.extent, h1 = (hi1 - lo1) / (canvas.width - 1), h2 = (hi2 - lo2) / (canvas.height - 1);
      mctx.imageSmoothingEnabled = true;
      mctx.drawImage(canvas, toPx(lo1 - h1 / 2), MAP_PX - toPx(hi2 + h2 / 2), toPx(hi1 + h1 / 2) - toPx(lo1 - h1 / 2), toPx(hi2 + h2 / 2) - toPx(lo2 - h2 / 2));
      mctx.strokeStyle = "#c00"; mctx.lineWidth = 1.5;
      for (const k of [1, 2]) {
        mctx.beginPath();
        mctx.ellipse(toPx(ov.q_mean[a]), MAP_PX - toPx(ov.q_mean[b]), k * ov.q_std[a] * MAP_PX / (2 * lim), k * ov.q_std[b] * MAP_PX / (2 * lim), 0, 0, 2 * Math.PI);
        mctx.stroke();
      }
    }
    mctx.lineWidth = 2;
    pins.forEach((p, i) => {
      mctx.strokeStyle = i >= pins.length - 2 ? "#000" : "#888";
      mctx.strokeRect(toPx(p[a]) - 5, MAP_PX - toPx(p[b]) - 5, 10, 10);
    });
    if (pins.length >= 2) {
      const p = pins[pins.length - 2], q = pins[pins.length - 1];
      mctx.setLineDash([4, 3]); mctx.strokeStyle = "#000"; mctx.beginPath();
      mctx.moveTo(toPx(p[a]), MAP_PX - toPx(p[b])); mctx.lineTo(toPx(q[a]), MAP_PX - toPx(q[b])); mctx.stroke(); mctx.setLineDash([]);
    }
    const x = toPx(z[a]), y = MAP_PX - toPx(z[b]);
    mctx.strokeStyle = "#d00"; mctx.beginPath(); mctx.moveTo(x - 8, y); mctx.lineTo(x + 8, y); mctx.moveTo(x, y - 8); mctx.lineTo(x, y + 8); mctx.stroke();
  }

  function nearest() {
    let best = -1, bd = Infinity;
    for (let i = 0; i < pts.labels.length; i++) {
      const d = (pts.z1[i] - z[a]) ** 2 + (pts.z2[i] - z[b]) ** 2;
      if (d < bd) { bd = d; best = i; }
    }
    return [best, Math.sqrt(bd)];
  }

  function drawStrip() {
    sctx.fillStyle = "#fff"; sctx.fillRect(0, 0, strip.width, strip.height);
    if (pins.length < 2) return;
    const p = pins[pins.length - 2], q = pins[pins.length - 1];
    for (let k = 0; k < STRIP_N; k++) {
      const t = k / (STRIP_N - 1);
      drawDigit(sctx, decode(p.map((v, i) => (1 - t) * v + t * q[i])), k * STRIP_CELL + 2, 2, STRIP_CELL - 4);
    }
  }

  let pending = false;
  function redraw() {  // decode + draw: at most twice per animation frame (see schedule)
    const t0 = performance.now();
    const probs = decode(z);
    drawDigit(dctx, probs, 0, 0, DIGIT_PX);
    drawMap();
    const [i, d] = nearest();
    const zs = z.map((v) => (v >= 0 ? "+" : "") + v.toFixed(2));
    const shown = dim === 2 ? `z = (${zs.join(", ")})` : `z${a + 1} = ${zs[a]}, z${b + 1} = ${zs[b]} (${dim - dims.length} of ${dim} dims held at 0)`;
    readout.textContent = `${shown}; nearest encoded test digit${dim === 2 ? "" : " on this map"}: a ${pts.labels[i]} (#${i}, ${d.toFixed(2)} away)` +
      (pins.length ? `; ${pins.length} pinned` : "");
    sliders.forEach((s, k) => { s.value = String(z[dims[k]]); });
    api.timings.push(performance.now() - t0);
    api.frames += 1;
    pending = false;
  }
  // The first move in a frame is drawn at once (decode + draw take about a millisecond), so new
  // pixels never wait for the next frame; further moves in the same frame are coalesced into one
  // redraw at the next animation frame.
  let drewThisFrame = false;
  function schedule() {
    if (!drewThisFrame) {
      drewThisFrame = true;
      redraw();
      requestAnimationFrame(() => { drewThisFrame = false; if (pending) redraw(); });
    } else {
      pending = true;
    }
  }

  // sliders for the latent dims with the most average KL (all of them on the 2-D model)
  const sliders = dims.map((j, k) => {
    const row = el("label", { style: "display: block" }, sliderBox);
    el("span", { text: `z${j + 1} `, style: "display: inline-block; width: 3em" }, row);
    const s = el("input", { type: "range", min: String(-lim), max: String(lim), step: "0.05", value: "0", "aria-label": `latent dim ${j + 1}` }, row);
    s.addEventListener("input", () => { z[j] = parseFloat(s.value); schedule(); });
    return s;
  });
  if (dim > dims.length) el("div", { text: `the other ${dim - dims.length} of ${dim} latent dims are held at 0`, style: "color: #555" }, sliderBox);

  function zAt(clientX, clientY) {
    const r = map.getBoundingClientRect();  // the drawing area starts inside the border
    const px = ((clientX - r.left - map.clientLeft) / map.clientWidth) * MAP_PX;
    const py = ((clientY - r.top - map.clientTop) / map.clientHeight) * MAP_PX;
    return [toZ(px), toZ(MAP_PX - py)];
  }
  map.addEventListener("pointermove", (e) => { const [u, v] = zAt(e.clientX, e.clientY); z[a] = u; z[b] = v; schedule(); });
  map.addEventListener("click", (e) => {
    const [u, v] = zAt(e.clientX, e.clientY); z[a] = u; z[b] = v;
    pins.push(z.slice()); if (pins.length > 2) pins.shift();
    map.focus(); drawStrip(); schedule();
  });
  map.addEventListener("keydown", (e) => {
    const step = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] }[e.key];
    if (!step) return;
    e.preventDefault();
    if (!pins.length) pins.push(z.slice());
    const p = pins[pins.length - 1];
    p[a] = Math.max(-lim, Math.min(lim, p[a] + 0.05 * step[0]));
    p[b] = Math.max(-lim, Math.min(lim, p[b] + 0.05 * step[1]));
    for (let i = 0; i < dim; i++) z[i] = p[i];
    drawStrip(); schedule();
  });
  digitBox.addEventListener("change", () => { model.set("digit", parseInt(digitBox.value, 10)); model.save_changes(); });
  model.on("change:overlay", () => {
    buildOverlay(); overlayNote();
    const ov = model.get("overlay");
    if (ov && ov.q_mean) { for (let i = 0; i < dim; i++) z[i] = ov.q_mean[i]; }
    schedule();
  });
  model.on("change:digit", () => { digitBox.value = String(model.get("digit")); });

  buildOverlay(); overlayNote();
  const ov0 = model.get("overlay");
  if (ov0 && ov0.q_mean) for (let i = 0; i < dim; i++) z[i] = ov0.q_mean[i];
  drawStrip();
  redraw();
  api.decode = (zz) => decode(zz);
  api.zAt = zAt;
  (window.__vaeExplorers = window.__vaeExplorers || []).push(api);
}

export default { render };
