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

// Cluster labels: each digit written near its cluster's median, moved outward when its box would touch
// a label already placed (largest clusters first), so "8" and "1" never read as "81".
function placeLabels(ctx, clusters, size) {
  const placed = [], GAP = 8, H = 18;
  const hits = (p) => placed.some((q) => p.x0 < q.x1 + GAP && q.x0 < p.x1 + GAP && p.y0 < q.y1 + GAP && q.y0 < p.y1 + GAP);
  const inside = (p) => p.x0 >= 0 && p.y0 >= 0 && p.x1 <= size && p.y1 <= size;
  for (const c of [...clusters].sort((p, q) => q.n - p.n)) {
    const w = ctx.measureText(c.label).width + 6;
    const boxAt = (x, y) => ({ label: c.label, x, y, mx: c.x, my: c.y, x0: x - w / 2, x1: x + w / 2, y0: y - H / 2, y1: y + H / 2 });
    let best = null;
    for (let r = 0; r <= 90 && !best; r += 4) {
      const n = r === 0 ? 1 : 16;
      for (let k = 0; k < n && !best; k++) {
        const t = (2 * Math.PI * k) / n, cand = boxAt(c.x + r * Math.cos(t), c.y + r * Math.sin(t));
        if (inside(cand) && !hits(cand)) best = cand;
      }
    }
    placed.push(best || boxAt(Math.min(size - w / 2, Math.max(w / 2, c.x)), Math.min(size - H / 2, Math.max(H / 2, c.y))));
  }
  return placed;
}

const SR_ONLY = "position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); clip-path: inset(50%); white-space: nowrap";
const fmt = (v) => (v >= 0 ? "+" : "\u2212") + Math.abs(v).toFixed(2);

function render({ model, el: host }) {
  const dim = model.get("latent_dim"), lim = model.get("lim"), dims = model.get("dims");
  const kl = model.get("kl") || [];  // average KL(q_phi(z_j|x) || N(0,1)) per dim over the test digits, nats
  const standalone = model.get("standalone") === true;  // export_html's page: no kernel behind it
  const decode = makeDecoder(model.get("decoder"));
  const sent = model.get("points");  // {z1, z2, labels}: encoder means of the test digits on the map's two dims
  const pts = { z1: f32(sent.z1), z2: f32(sent.z2), labels: Array.from(f32(sent.labels), Math.round) };
  const z = new Array(dim).fill(0);  // the current latent point (dims not on the map or a slider stay 0)
  const pins = [];  // pinned points (full z vectors); the last two give the strip; arrow keys move the last
  const api = { timings: [], frames: 0 };
  const a = dims[0], b = dims[1];  // the latent dims drawn horizontally and vertically
  const name = (j) => (dim === 2 ? `z${j + 1}` : `dim ${j + 1}`);

  const root = el("div", { "data-testid": "vae-explorer", style: "font: 13px sans-serif; display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; max-width: 100%; box-sizing: border-box" }, host);
  const left = el("div", { style: "flex: 1 1 280px; max-width: 390px; min-width: 0" }, root);
  const how = "Move the pointer to decode; click (or Enter / Space on the focused map) pins the point; arrow keys move the last pin (Shift: 10 steps); two pins draw the strip below.";
  const mapText = dim === 2
    ? `Encoded test digits (encoder means, coloured and labelled by digit) on z1 (across) and z2 (up). ${how}`
    : `The map is a 2-D view of ${dim} latent dims: the test digits' encoder means on ${name(a)} (across) and ${name(b)} (up), ` +
      `the two with the most KL. Digits close on this map can be far apart in the other ${dim - 2} dims, so the "nearest test digit on this map" below is only a hint. ${how}`;
  el("div", { "data-testid": "map-caption", text: mapText, style: "margin-bottom: 4px" }, left);
  const frame = el("div", { style: "position: relative; margin: 10px 0 22px 28px" }, left);
  const map = el("canvas", { "data-testid": "latent-map", width: MAP_PX, height: MAP_PX, tabindex: "0", role: "application",
    "aria-label": `Latent map, ${name(a)} across and ${name(b)} up, from -${lim} to ${lim}. Move the pointer to pick a latent point z; Enter or Space pins the current point; arrow keys move the last pin.`,
    style: "display: block; width: 100%; height: auto; box-sizing: border-box; border: 1px solid #999; cursor: crosshair; touch-action: none" }, frame);
  // the map's scale: ticks at the whole numbers in [-lim, lim], HTML beside the canvas so they scale with it
  for (let v = -Math.floor(lim); v <= Math.floor(lim); v++) {
    const f = (v + lim) / (2 * lim), t = v < 0 ? `\u2212${-v}` : String(v);
    el("span", { "data-testid": "map-tick-x", "aria-hidden": "true", text: t, style: `position: absolute; top: 100%; left: ${100 * f}%; transform: translateX(-50%); font-size: 11px; color: #444; line-height: 16px; white-space: nowrap` }, frame);
    el("span", { "data-testid": "map-tick-y", "aria-hidden": "true", text: t, style: `position: absolute; right: 100%; top: ${100 * (1 - f)}%; transform: translateY(-50%); padding-right: 3px; font-size: 11px; color: #444; white-space: nowrap` }, frame);
  }
  el("div", { "data-testid": "map-axes", text: `Axes: ${name(a)} across, ${name(b)} up, in latent units (the prior N(0, 1) puts 95% of its mass within \u00b12).`, style: "color: #555" }, left);

  const right = el("div", { style: "flex: 0 1 330px; min-width: 0" }, root);
  el("div", { text: "decoder p(x|z): pixel probabilities" }, right);
  const digit = el("canvas", { "data-testid": "digit", width: DIGIT_PX, height: DIGIT_PX, role: "img", "aria-label": "the decoded digit: each square's darkness is the probability the decoder gives that pixel being on", style: "border: 1px solid #999; max-width: 100%; height: auto" }, right);
  const legend = el("div", { "data-testid": "legend", style: "display: flex; align-items: center; gap: 4px; margin-top: 2px; flex-wrap: wrap" }, right);
  el("span", { text: "white: p = 0" }, legend);
  el("span", { "aria-hidden": "true", style: "display: inline-block; width: 80px; height: 10px; border: 1px solid #999; background: linear-gradient(to right, #fff, #000)" }, legend);
  el("span", { text: "black: p = 1" }, legend);
  el("div", { text: "p: the probability the decoder gives the pixel being on", style: "flex-basis: 100%; color: #555" }, legend);
  // The readout: the visible line follows the pointer but is aria-hidden; the polite live region only
  // gets new words on a pin, a key or a slider, so a screen reader is not talking on every hover.
  const readout = el("div", { "data-testid": "readout", "aria-live": "polite", style: "margin-top: 6px; min-height: 3em; overflow-wrap: anywhere" }, right);
  const hover = el("span", { "data-testid": "hover-readout", "aria-hidden": "true" }, readout);
  const announce = el("span", { "data-testid": "announce", style: SR_ONLY }, readout);
  const sliderBox = el("div", { style: "margin-top: 6px" }, right);
  let digitBox = null, note = null;
  if (standalone) {
    el("div", { "data-testid": "kernel-note", text: "In the notebook you can also pick a test digit and see q_phi(z|x) and p(z|x) drawn on the map; that needs the notebook's Python kernel, so this page leaves it out.", style: "margin-top: 6px; color: #555" }, right);
  } else {
    const pick = el("label", { text: "test digit # (kernel overlay: q_phi(z|x) and p(z|x)) ", style: "display: block; margin-top: 6px" }, right);
    digitBox = el("input", { type: "number", min: "-1", max: String(model.get("n_images") - 1), step: "1", value: String(model.get("digit")), "aria-label": "test digit number", style: "width: 5em" }, pick);
    note = el("div", { "data-testid": "overlay-note", style: "margin-top: 4px; color: #555" }, right);
  }
  const stripBox = el("div", { style: "flex-basis: 100%; min-width: 0" }, root);
  el("div", { text: "interpolation between the last two pinned points (click two points, or Enter on the map twice)", style: "margin-top: 4px" }, stripBox);
  const strip = el("canvas", { "data-testid": "strip", width: STRIP_N * STRIP_CELL, height: STRIP_CELL, role: "img", "aria-label": "decoded digits on the straight line between the last two pinned points", style: "display: block; border: 1px solid #999; width: 100%; max-width: 400px; height: auto; box-sizing: border-box" }, stripBox);

  const toPx = (v) => ((v + lim) / (2 * lim)) * MAP_PX;
  const toZ = (p) => (p / MAP_PX) * 2 * lim - lim;

  // background: the encoded test digits coloured by label, each label written near its cluster's median
  const bg = document.createElement("canvas"); bg.width = MAP_PX; bg.height = MAP_PX;
  const bctx = bg.getContext("2d");
  bctx.fillStyle = "#fff"; bctx.fillRect(0, 0, MAP_PX, MAP_PX);
  bctx.strokeStyle = "#ddd"; bctx.beginPath();
  for (let v = -Math.floor(lim); v <= Math.floor(lim); v++) {  // faint grid lines at the ticks
    bctx.moveTo(toPx(v), 0); bctx.lineTo(toPx(v), MAP_PX); bctx.moveTo(0, MAP_PX - toPx(v)); bctx.lineTo(MAP_PX, MAP_PX - toPx(v));
  }
  bctx.stroke();
  bctx.strokeStyle = "#bbb"; bctx.beginPath();
  bctx.moveTo(toPx(0), 0); bctx.lineTo(toPx(0), MAP_PX); bctx.moveTo(0, MAP_PX - toPx(0)); bctx.lineTo(MAP_PX, MAP_PX - toPx(0)); bctx.stroke();
  const byLabel = {};
  pts.labels.forEach((lab, i) => {
    bctx.fillStyle = COLOURS[lab % 10]; bctx.globalAlpha = 0.6;
    bctx.beginPath(); bctx.arc(toPx(pts.z1[i]), MAP_PX - toPx(pts.z2[i]), 2.5, 0, 2 * Math.PI); bctx.fill();
    (byLabel[lab] = byLabel[lab] || []).push(i);
  });
  bctx.globalAlpha = 1; bctx.font = "bold 16px sans-serif"; bctx.textAlign = "center"; bctx.textBaseline = "middle";
  const median = (v) => { const s = [...v].sort((p, q) => p - q); return s[Math.floor(s.length / 2)]; };
  const clusters = Object.entries(byLabel).map(([lab, idx]) => ({ label: lab, n: idx.length,
    x: toPx(median(idx.map((i) => pts.z1[i]))), y: MAP_PX - toPx(median(idx.map((i) => pts.z2[i]))) }));
  api.labelBoxes = placeLabels(bctx, clusters, MAP_PX);
  for (const p of api.labelBoxes) {
    bctx.fillStyle = "rgba(255, 255, 255, 0.8)"; bctx.fillRect(p.x0, p.y0, p.x1 - p.x0, p.y1 - p.y0);
    bctx.fillStyle = COLOURS[p.label % 10]; bctx.fillText(p.label, p.x, p.y + 1);
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
    if (!note) return;
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

  function where() {  // z in words, and the nearest encoded test digit
    const [i, d] = nearest();
    const others = z.filter((v, j) => !dims.includes(j)), held = others.every((v) => v === 0) ? "held at 0" : "at a test digit's encoder mean";
    const shown = dim === 2 ? `z = (${fmt(z[0])}, ${fmt(z[1])})` : `${name(a)} = ${fmt(z[a])}, ${name(b)} = ${fmt(z[b])} (${others.length} of ${dim} dims ${held})`;
    return `${shown}; nearest encoded test digit${dim === 2 ? "" : " on this map"}: a ${pts.labels[i]} (#${i}, ${d.toFixed(2)} away)`;
  }
  function say(what) {  // the live region: only on a pin, a key or a slider
    announce.textContent = `${what}: ${where()}` + (pins.length >= 2 ? "; the strip shows the digits between the last two pins" :
      pins.length === 1 ? "; press Enter to pin a second point" : "");
    api.announcements = (api.announcements || 0) + 1;
  }

  let pending = false;
  function redraw() {  // decode + draw: at most twice per animation frame (see schedule)
    const t0 = performance.now();
    const probs = decode(z);
    drawDigit(dctx, probs, 0, 0, DIGIT_PX);
    drawMap();
    hover.textContent = where() + (pins.length ? `; ${pins.length} pinned` : "");
    sliders.forEach((s, k) => { s.value = String(z[dims[k]]); values[k].textContent = fmt(z[dims[k]]); });
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

  // Sliders (models with more than 2 latent dims): every dim with more than 0.1 nats of average KL,
  // most KL first. The 2-D model has none: the map is its two sliders.
  const sliderDims = dim === 2 ? [] : dims, values = [];
  if (sliderDims.length) {
    const held = dim - dims.length;
    el("div", { "data-testid": "slider-note", style: "margin-bottom: 4px",
      text: `Sliders for the ${dims.length} dims whose average KL(q_phi(z_j|x) || N(0, 1)) over the test digits is above 0.1 nats, ` +
        `most KL first: those are the dims the encoder uses, and the decoder reacts most to them. ` +
        (held ? `The other ${held} dims carry almost no KL (q_phi(z_j|x) is close to the prior), so they are held at 0, the prior's mean.` : "") }, sliderBox);
  }
  const sliders = sliderDims.map((j) => {
    const row = el("label", { style: "display: flex; align-items: center; gap: 4px" }, sliderBox);
    el("span", { text: name(j), style: "flex: 0 0 3.6em" }, row);
    const s = el("input", { type: "range", min: String(-lim), max: String(lim), step: "0.05", value: "0", "aria-label": `latent dim ${j + 1}`, style: "flex: 1 1 80px; min-width: 0" }, row);
    values.push(el("span", { "data-testid": "slider-value", "aria-hidden": "true", text: fmt(0), style: "flex: 0 0 3.4em; font-variant-numeric: tabular-nums" }, row));
    el("span", { text: kl[j] !== undefined ? `${kl[j].toFixed(2)} nats` : "", style: "flex: 0 0 5em; color: #555" }, row);
    s.addEventListener("input", () => { z[j] = parseFloat(s.value); schedule(); });
    s.addEventListener("change", () => say(`${name(j)} set`));
    return s;
  });

  function zAt(clientX, clientY) {
    const r = map.getBoundingClientRect();  // the drawing area starts inside the border
    const px = ((clientX - r.left - map.clientLeft) / map.clientWidth) * MAP_PX;
    const py = ((clientY - r.top - map.clientTop) / map.clientHeight) * MAP_PX;
    return [toZ(px), toZ(MAP_PX - py)];
  }
  function pin() {
    pins.push(z.slice()); if (pins.length > 2) pins.shift();
    drawStrip(); schedule(); say(`pin ${pins.length}`);
  }
  map.addEventListener("pointermove", (e) => { const [u, v] = zAt(e.clientX, e.clientY); z[a] = u; z[b] = v; schedule(); });
  map.addEventListener("click", (e) => {
    const [u, v] = zAt(e.clientX, e.clientY); z[a] = u; z[b] = v;
    map.focus(); pin();
  });
  map.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " " || e.key === "Spacebar") {
      e.preventDefault(); e.stopPropagation();  // in JupyterLab, Enter would otherwise edit the cell
      pin();
      return;
    }
    const step = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] }[e.key];
    if (!step || e.altKey || e.ctrlKey || e.metaKey) return;
    e.preventDefault(); e.stopPropagation();
    if (!pins.length) pins.push(z.slice());
    const p = pins[pins.length - 1], h = e.shiftKey ? 0.5 : 0.05;
    p[a] = Math.max(-lim, Math.min(lim, p[a] + h * step[0]));
    p[b] = Math.max(-lim, Math.min(lim, p[b] + h * step[1]));
    for (let i = 0; i < dim; i++) z[i] = p[i];
    drawStrip(); schedule(); say(`pin ${pins.length} moved`);
  });
  if (digitBox) digitBox.addEventListener("change", () => { model.set("digit", parseInt(digitBox.value, 10)); model.save_changes(); });
  model.on("change:overlay", () => {
    buildOverlay(); overlayNote();
    const ov = model.get("overlay");
    if (ov && ov.q_mean) { for (let i = 0; i < dim; i++) z[i] = ov.q_mean[i]; say(`test digit #${ov.digit}`); }
    schedule();
  });
  model.on("change:digit", () => { if (digitBox) digitBox.value = String(model.get("digit")); });

  buildOverlay(); overlayNote();
  const ov0 = model.get("overlay");
  if (ov0 && ov0.q_mean) for (let i = 0; i < dim; i++) z[i] = ov0.q_mean[i];
  drawStrip();
  redraw();
  api.decode = (zz) => decode(zz);
  api.zAt = zAt;
  api.dims = dims.slice();
  api.z = () => z.slice();
  api.pins = () => pins.map((p) => p.slice());
  (window.__vaeExplorers = window.__vaeExplorers || []).push(api);
}

export default { render };
