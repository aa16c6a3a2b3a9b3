// The in-page instrument: the current VAE's dense layers run here, on every pointer move.
// Python sends one byte blob (see playground/ui/instrument.py): "VAEI", the length of a JSON
// block (labels, mode, code, strokes), the JSON, then pack_weights' blob (playground/inference.py).
// Back to Python only when a gesture ends: setStateValue("code") or setStateValue("drawing").

const STATES = new WeakMap(); // parentElement -> the instrument mounted there
const MODELS = new Map(); // "crc:count" -> parsed weights, shared by mounts; the two latest are kept
const SPAN = 4; // sliders reach four standard deviations of the prior
const STEP = 0.05;
const FIELD = 28;
const BOX = 20;
const INK = 280; // the drawing canvas' intrinsic size
const PEN = 18;
const HEADER = 44; // the weights blob's header bytes

// ---- the blob ----

function readEnvelope(data) {
  const bytes = data instanceof Uint8Array ? data.slice() : new Uint8Array(data); // own, aligned copy
  const view = new DataView(bytes.buffer);
  const magic = String.fromCharCode(...bytes.subarray(0, 4));
  if (magic !== "VAEI") throw new Error("instrument: not an instrument payload");
  const metaLength = view.getUint32(4, true);
  const meta = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + metaLength)));
  const start = 8 + metaLength + ((4 - (metaLength % 4)) % 4);
  return { meta, weights: bytes.subarray(start) };
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function weightsKey(blob) {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  return `${view.getUint32(32, true)}:${view.getUint32(28, true)}`;
}

function readWeights(blob) {
  // Header: magic, format, version, latent, intermediate, original, has_encoder, count, crc32,
  // hidden layers, classes (little-endian uint32s; 44 bytes). See playground/inference.py pack_weights.
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const [version, L, H, O, hasEncoder, count, crc, layers, C] = [8, 12, 16, 20, 24, 28, 32, 36, 40].map((o) =>
    view.getUint32(o, true),
  );
  const floatBytes = blob.slice(HEADER, HEADER + 4 * count); // a copy: Float32Array needs an aligned buffer of its own
  if (floatBytes.length !== 4 * count || crc32(floatBytes) !== crc) throw new Error("instrument: damaged weights");
  const values = new Float32Array(floatBytes.buffer);
  let offset = 0;
  const take = (size) => values.subarray(offset, (offset += size));
  const layer = (rows, cols, relu) => ({ k: take(rows * cols), b: take(cols), rows, cols, relu });
  const hidden = (rows) => [layer(rows, H, true), ...Array.from({ length: layers - 1 }, () => layer(H, H, true))];
  // C > 0: a conditional model; the one-hot label follows the code (decoder) and the pixels (encoder).
  const model = { version, L, H, O, C, raw: blob.slice(), loadedAt: performance.now() };
  model.decoder = [...hidden(L + C), layer(H, O, false)];
  if (hasEncoder) model.encoder = { layers: hidden(O + C), mean: layer(H, L, false), logVar: layer(H, L, false) };
  return model;
}

function modelFor(blob, key) {
  // The weights in this blob, or (an empty blob: a rerun that sent only the key) the ones held for key.
  if (blob.length === 0) return MODELS.get(key) || null;
  let model = MODELS.get(weightsKey(blob));
  if (!model) {
    model = readWeights(blob);
    MODELS.set(weightsKey(blob), model);
    while (MODELS.size > 3) MODELS.delete(MODELS.keys().next().value);
  }
  return model;
}

// ---- the math: dense layers in typed-array loops ----

function dense(layer, input, label = -1) {
  // input [rows - C] and, when label >= 0, a one-hot label [C] after it -> [cols], ReLU if the layer has it.
  const { k, b, cols, relu } = layer;
  const acc = new Float64Array(cols);
  for (let j = 0; j < cols; j++) acc[j] = b[j];
  for (let i = 0; i < input.length; i++) {
    const x = input[i];
    if (x === 0) continue; // a drawing is mostly black, a ReLU's output mostly zero
    const row = i * cols;
    for (let j = 0; j < cols; j++) acc[j] += x * k[row + j];
  }
  if (label >= 0) {
    const row = (input.length + label) * cols; // the one-hot's 1 picks one row of the kernel
    for (let j = 0; j < cols; j++) acc[j] += k[row + j];
  }
  if (relu) for (let j = 0; j < cols; j++) acc[j] = Math.max(0, acc[j]);
  return acc;
}

function conditioned(model, label) {
  // The label the model reads: -1 for an unconditional one, else a class in 0..C-1.
  return model.C > 0 ? Math.min(model.C - 1, Math.max(0, label | 0)) : -1;
}

function decode(model, code, out, label = 0) {
  let x = dense(model.decoder[0], code, conditioned(model, label));
  for (let i = 1; i < model.decoder.length; i++) x = dense(model.decoder[i], x);
  for (let o = 0; o < model.O; o++) out[o] = 1 / (1 + Math.exp(-x[o])); // sigmoid
  return out;
}

function encode(model, pixels, label = 0) {
  const { layers, mean, logVar } = model.encoder;
  let x = dense(layers[0], pixels, conditioned(model, label));
  for (let i = 1; i < layers.length; i++) x = dense(layers[i], x);
  return { mean: dense(mean, x), logVar: dense(logVar, x) };
}

export { readWeights, decode, encode }; // for tests/test_instrument_math.py, which runs them in Node

// ---- MNIST preparation: a port of playground.imaging.to_mnist for a canvas' RGBA pixels ----

function roundHalfEven(x) {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function median(values) {
  const sorted = Float64Array.from(values).sort();
  const m = sorted.length >> 1;
  return sorted.length % 2 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
}

function inkOf(rgba, width, height) {
  // imaging.ink: grey levels, paper from the border's median, light ink on dark paper.
  const n = width * height;
  const grey = new Float64Array(n);
  let alphaMin = 255;
  let alphaMax = 0;
  for (let p = 0; p < n; p++) {
    const a = rgba[4 * p + 3];
    if (a < alphaMin) alphaMin = a;
    if (a > alphaMax) alphaMax = a;
  }
  if (alphaMin < alphaMax) {
    for (let p = 0; p < n; p++) grey[p] = rgba[4 * p + 3] / 255;
    return grey;
  }
  let top = 0;
  for (let p = 0; p < 4 * n; p++) if (p % 4 !== 3 && rgba[p] > top) top = rgba[p];
  const scale = top <= 1 ? 1 : 255;
  for (let p = 0; p < n; p++) {
    grey[p] = (rgba[4 * p] / scale) * 0.299 + (rgba[4 * p + 1] / scale) * 0.587 + (rgba[4 * p + 2] / scale) * 0.114;
  }
  const border = [];
  for (let x = 0; x < width; x++) border.push(grey[x]);
  for (let x = 0; x < width; x++) border.push(grey[(height - 1) * width + x]);
  for (let y = 0; y < height; y++) border.push(grey[y * width]);
  for (let y = 0; y < height; y++) border.push(grey[y * width + width - 1]);
  let paper = median(border);
  const invert = paper > 0.5;
  if (invert) paper = 1 - paper;
  const span = Math.max(1 - paper, 1e-6);
  for (let p = 0; p < n; p++) {
    const g = invert ? 1 - grey[p] : grey[p];
    grey[p] = Math.min(1, Math.max(0, (g - paper) / span));
  }
  return grey;
}

function lanczos(x) {
  const sinc = (v) => (v === 0 ? 1 : Math.sin(v * Math.PI) / (v * Math.PI));
  return x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

function coefficients(inSize, outSize) {
  // Pillow's precompute_coeffs (Resample.c) for the LANCZOS filter.
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 3 * filterScale;
  const rows = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const k = new Float64Array(xmax);
    let total = 0;
    for (let x = 0; x < xmax; x++) total += k[x] = lanczos((x + xmin - center + 0.5) / filterScale);
    if (total !== 0) for (let x = 0; x < xmax; x++) k[x] /= total;
    rows.push({ xmin, k });
  }
  return rows;
}

function resize(src, width, height, outW, outH) {
  // Pillow's two-pass resize of a mode "F" image: horizontal first, each pass stored as float32.
  let img = src;
  let w = width;
  let h = height;
  if (outW !== w) {
    const co = coefficients(w, outW);
    const first = 0;
    const tmp = new Float32Array(outW * h);
    for (let y = first; y < h; y++) {
      for (let xx = 0; xx < outW; xx++) {
        const { xmin, k } = co[xx];
        let ss = 0;
        for (let x = 0; x < k.length; x++) ss += img[y * w + x + xmin] * k[x];
        tmp[y * outW + xx] = ss;
      }
    }
    [img, w] = [tmp, outW];
  }
  if (outH !== h) {
    const co = coefficients(h, outH);
    const tmp = new Float32Array(w * outH);
    for (let yy = 0; yy < outH; yy++) {
      const { xmin, k } = co[yy];
      for (let x = 0; x < w; x++) {
        let ss = 0;
        for (let y = 0; y < k.length; y++) ss += img[(y + xmin) * w + x] * k[y];
        tmp[yy * w + x] = ss;
      }
    }
    [img, h] = [tmp, outH];
  }
  return img;
}

export function toMnist(rgba, width, height) {
  // The drawing as an MNIST input: Float32Array(784) in [0, 1]; all zeros if blank (imaging.to_mnist).
  const strokes = inkOf(rgba, width, height);
  const out = new Float32Array(FIELD * FIELD);
  let r0 = height;
  let r1 = -1;
  let c0 = width;
  let c1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (strokes[y * width + x] >= 0.1) {
        if (y < r0) r0 = y;
        if (y > r1) r1 = y;
        if (x < c0) c0 = x;
        if (x > c1) c1 = x;
      }
    }
  }
  if (r1 < 0) return out;
  const dh = r1 - r0 + 1;
  const dw = c1 - c0 + 1;
  const digit = new Float32Array(dh * dw);
  for (let y = 0; y < dh; y++) for (let x = 0; x < dw; x++) digit[y * dw + x] = strokes[(y + r0) * width + x + c0];
  const scale = BOX / Math.max(dh, dw);
  const bw = Math.max(1, roundHalfEven(dw * scale));
  const bh = Math.max(1, roundHalfEven(dh * scale));
  const boxed = resize(digit, dw, dh, bw, bh);
  const field = new Float64Array(FIELD * FIELD);
  const top = Math.floor((FIELD - bh) / 2);
  const left = Math.floor((FIELD - bw) / 2);
  for (let y = 0; y < bh; y++) for (let x = 0; x < bw; x++) field[(top + y) * FIELD + left + x] = Math.max(0, boxed[y * bw + x]);
  let total = 0;
  let sumR = 0;
  let sumC = 0;
  for (let y = 0; y < FIELD; y++) {
    for (let x = 0; x < FIELD; x++) {
      const v = field[y * FIELD + x];
      total += v;
      sumR += y * v;
      sumC += x * v;
    }
  }
  const shiftR = roundHalfEven((FIELD - 1) / 2 - sumR / total);
  const shiftC = roundHalfEven((FIELD - 1) / 2 - sumC / total);
  let peak = 0;
  const shifted = new Float64Array(FIELD * FIELD);
  for (let y = 0; y < FIELD; y++) {
    for (let x = 0; x < FIELD; x++) {
      const sy = y - shiftR;
      const sx = x - shiftC;
      if (sy < 0 || sy >= FIELD || sx < 0 || sx >= FIELD) continue;
      const v = field[sy * FIELD + sx];
      shifted[y * FIELD + x] = v;
      if (v > peak) peak = v;
    }
  }
  for (let p = 0; p < FIELD * FIELD; p++) out[p] = shifted[p] / peak;
  return out;
}

// ---- small DOM helpers ----

function el(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function paint(canvas, pixels) {
  // A [784] image in [0, 1] onto a 28 x 28 canvas, grey levels as 8-bit.
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(FIELD, FIELD);
  for (let p = 0; p < FIELD * FIELD; p++) {
    const v = Math.round(Math.min(1, Math.max(0, pixels[p])) * 255);
    image.data[4 * p] = image.data[4 * p + 1] = image.data[4 * p + 2] = v;
    image.data[4 * p + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

function digitCanvas(label, className) {
  return el("canvas", { width: FIELD, height: FIELD, role: "img", "aria-label": label, class: `digit ${className}` });
}

function record(list, value, limit = 5000) {
  list.push(value);
  if (list.length > limit) list.shift();
}

function afterFrame(callback) {
  requestAnimationFrame(() => callback(performance.now()));
}

// ---- Explore: sliders, a 2-D pad, random / zero ----

class Explorer {
  constructor(root, meta, send) {
    this.root = root;
    this.send = send;
    this.labels = meta.labels;
    this.code = new Float64Array(meta.code);
    this.serial = meta.code_serial;
    this.label = meta.label ?? 0; // the class a conditional model draws (the server's class picker)
    this.model = null;
    this.pixels = new Float32Array(FIELD * FIELD);
    this.metrics = { latency: [], frameLatency: [], weights: [], arrivals: [], draws: 0 };
    this.build(meta);
  }

  build(meta) {
    const t = this.labels;
    const L = this.code.length;
    this.image = digitCanvas(t.decoded, "decoded");
    this.weightsNote = el("div", { class: "note", "aria-live": "polite" });
    const stage = el("div", { class: "stage" }, [el("figure", {}, [this.image, el("figcaption", { text: t.decoded_caption })])]);
    // The pad: any two dimensions, its background the decoder's manifold over them.
    this.padX = el("select", { "aria-label": t.pad_x });
    this.padY = el("select", { "aria-label": t.pad_y });
    for (let i = 0; i < L; i++) {
      this.padX.append(el("option", { value: i, text: `z${i}` }));
      this.padY.append(el("option", { value: i, text: `z${i}` }));
    }
    this.padY.value = String(Math.min(1, L - 1));
    this.grid = el("canvas", { width: 11 * FIELD, height: 11 * FIELD, class: "grid", "aria-hidden": "true" });
    this.dot = el("div", { class: "dot" });
    this.pad = el("div", { class: "pad", tabindex: "0", role: "group", "aria-label": t.pad }, [this.grid, this.dot]);
    stage.append(el("div", { class: "pad-wrap" }, [el("div", { class: "pad-dims" }, [this.padX, this.padY]), this.pad]));
    stage.append(this.weightsNote);
    const random = el("button", { type: "button", text: t.random });
    const zero = el("button", { type: "button", text: t.zero });
    this.sliders = [];
    this.values = [];
    const list = el("div", { class: "sliders" });
    for (const dim of meta.order) {
      const input = el("input", { type: "range", min: -SPAN, max: SPAN, step: STEP, "aria-label": `z${dim}` });
      const value = el("output", { class: "value" });
      this.sliders[dim] = input;
      this.values[dim] = value;
      list.append(el("label", { class: "slider" }, [el("span", { class: "name", text: `z${dim}` }), input, value]));
      // The latency is measured from the pointer or key event that moved the slider, not from the
      // "input" event it causes (that one is stamped when the slider has already handled the move).
      const cause = (event) => {
        this.cause = event.timeStamp;
      };
      for (const name of ["pointerdown", "pointermove", "keydown"]) input.addEventListener(name, cause);
      input.addEventListener("input", (event) => {
        this.code[dim] = Number(input.value);
        this.redraw(this.cause ?? event.timeStamp);
        this.cause = undefined;
        this.gridSoon();
      });
      input.addEventListener("change", () => this.commit());
    }
    const controls = el("div", { class: "controls" }, [el("div", { class: "buttons" }, [random, zero]), list]);
    this.root.append(el("div", { class: "explore" }, [stage, controls]));
    random.addEventListener("click", (event) => {
      for (let i = 0; i < L; i++) this.code[i] = Math.round(clampCode(gaussian()) * 100) / 100;
      this.afterJump(event.timeStamp);
    });
    zero.addEventListener("click", (event) => {
      this.code.fill(0);
      this.afterJump(event.timeStamp);
    });
    for (const select of [this.padX, this.padY]) select.addEventListener("change", () => this.drawGrid());
    this.bindPad();
    this.syncControls();
  }

  bindPad() {
    const move = (event) => {
      const rect = this.pad.getBoundingClientRect();
      const fx = (event.clientX - rect.left) / rect.width;
      const fy = (event.clientY - rect.top) / rect.height;
      this.code[Number(this.padX.value)] = snap(clampCode((fx * 2 - 1) * this.padSpan()));
      this.code[Number(this.padY.value)] = snap(clampCode((1 - fy * 2) * this.padSpan()));
      this.syncControls();
      this.redraw(event.timeStamp);
    };
    this.pad.addEventListener("pointerdown", (event) => {
      this.pad.setPointerCapture(event.pointerId);
      this.dragging = true;
      move(event);
    });
    this.pad.addEventListener("pointermove", (event) => {
      if (this.dragging) move(event);
    });
    const end = () => {
      if (!this.dragging) return;
      this.dragging = false;
      this.commit();
      this.drawGrid();
    };
    this.pad.addEventListener("pointerup", end);
    this.pad.addEventListener("pointercancel", end);
    this.pad.addEventListener("keydown", (event) => {
      const step = event.shiftKey ? 0.5 : 0.1;
      const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
      const delta = moves[event.key];
      if (!delta) return;
      event.preventDefault();
      const [x, y] = [Number(this.padX.value), Number(this.padY.value)];
      this.code[x] = snap(clampCode(this.code[x] + delta[0]));
      this.code[y] = snap(clampCode(this.code[y] + delta[1]));
      this.syncControls();
      this.redraw(event.timeStamp);
      this.commitSoon();
    });
  }

  padSpan() {
    return SPAN;
  }

  afterJump(timeStamp) {
    this.syncControls();
    this.redraw(timeStamp);
    this.commit();
    this.drawGrid();
  }

  syncControls() {
    for (let i = 0; i < this.code.length; i++) {
      this.sliders[i].value = String(this.code[i]);
      this.values[i].textContent = this.code[i].toFixed(2);
    }
    const span = this.padSpan();
    const x = this.code[Number(this.padX.value)];
    const y = this.code[Number(this.padY.value)];
    this.dot.style.left = `${((x / span + 1) / 2) * 100}%`;
    this.dot.style.top = `${((1 - y / span) / 2) * 100}%`;
  }

  redraw(timeStamp) {
    if (!this.model) return;
    decode(this.model, this.code, this.pixels, this.label);
    paint(this.image, this.pixels);
    this.metrics.draws += 1;
    if (timeStamp !== undefined) {
      for (let i = 0; i < this.code.length; i++) this.values[i].textContent = this.code[i].toFixed(2);
      const drawn = performance.now();
      record(this.metrics.latency, drawn - timeStamp);
      afterFrame((frame) => record(this.metrics.frameLatency, frame - timeStamp));
    }
  }

  gridSoon() {
    clearTimeout(this.gridTimer);
    this.gridTimer = setTimeout(() => this.drawGrid(), 200);
  }

  drawGrid() {
    // The manifold over the pad's two dimensions around the current code: 11 x 11 decodes.
    if (!this.model) return;
    const steps = 11;
    const [dx, dy] = [Number(this.padX.value), Number(this.padY.value)];
    const ctx = this.grid.getContext("2d");
    const sheet = ctx.createImageData(steps * FIELD, steps * FIELD);
    const code = Float64Array.from(this.code);
    const out = new Float32Array(FIELD * FIELD);
    const span = this.padSpan();
    for (let r = 0; r < steps; r++) {
      for (let c = 0; c < steps; c++) {
        code[dx] = (-1 + (2 * (c + 0.5)) / steps) * span;
        if (dy !== dx) code[dy] = (1 - (2 * (r + 0.5)) / steps) * span;
        decode(this.model, code, out, this.label);
        for (let y = 0; y < FIELD; y++) {
          for (let x = 0; x < FIELD; x++) {
            const q = 4 * ((r * FIELD + y) * steps * FIELD + c * FIELD + x);
            const v = Math.round(out[y * FIELD + x] * 255);
            sheet.data[q] = sheet.data[q + 1] = sheet.data[q + 2] = v;
            sheet.data[q + 3] = 255;
          }
        }
      }
    }
    ctx.putImageData(sheet, 0, 0);
    this.syncControls();
  }

  commitSoon() {
    clearTimeout(this.commitTimer);
    this.commitTimer = setTimeout(() => this.commit(), 400);
  }

  commit() {
    this.send("code", Array.from(this.code, (v) => Math.round(v * 100) / 100)); // as the server keeps it
  }

  update(meta, model) {
    let moved = false;
    if (meta.code_serial !== this.serial && meta.code.length === this.code.length) {
      // The server moved the code (a digit sent here, the map's click, its own sliders).
      this.serial = meta.code_serial;
      this.code = new Float64Array(meta.code);
      this.syncControls();
      moved = true;
    }
    if ((meta.label ?? 0) !== this.label) {
      this.label = meta.label ?? 0; // a new class, the same code: the same style
      moved = true;
    }
    if (model !== this.model) {
      this.model = model;
      record(this.metrics.weights, { version: model.version, lagMs: Date.now() - meta.sent_at, at: performance.now() });
      this.weightsNote.textContent = `${this.labels.weights} ${model.version}`;
    } else if (!moved) {
      return;
    }
    this.redraw();
    this.drawGrid();
  }
}

function clampCode(v) {
  return Math.min(SPAN, Math.max(-SPAN, v));
}

function snap(v) {
  return Math.round(v / STEP) * STEP;
}

function gaussian() {
  const u = 1 - Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
}

// ---- Draw: a canvas with Pointer Events, the MNIST input, the reconstruction and the code ----

class Drawer {
  constructor(root, meta, send) {
    this.root = root;
    this.send = send;
    this.labels = meta.labels;
    this.strokes = (meta.strokes || []).map((s) => s.map((p) => [p[0], p[1]]));
    this.label = meta.label ?? 0; // the class a conditional model encodes with (picked, or the best guess)
    this.model = null;
    this.digit = new Float32Array(FIELD * FIELD);
    this.pixels = new Float32Array(FIELD * FIELD);
    this.code = null;
    this.metrics = { latency: [], frameLatency: [], strokeUpdates: [], updates: 0, weights: [], arrivals: [] };
    this.build();
    this.repaintInk();
    this.compute();
  }

  build() {
    const t = this.labels;
    this.ink = el("canvas", { width: INK, height: INK, class: "ink", role: "img", "aria-label": t.canvas });
    this.ctx = this.ink.getContext("2d", { willReadFrequently: true });
    const undo = el("button", { type: "button", text: t.undo });
    const clear = el("button", { type: "button", text: t.clear });
    this.input = digitCanvas(t.input, "input");
    this.recon = digitCanvas(t.reconstruction, "recon");
    this.bars = el("canvas", { width: 320, height: 160, class: "bars", role: "img", "aria-label": t.code_bars });
    const left = el("div", { class: "ink-col" }, [this.ink, el("div", { class: "buttons" }, [undo, clear]), el("p", { class: "help", text: t.help })]);
    const right = el("div", { class: "out-col" }, [
      el("div", { class: "pair" }, [
        el("figure", {}, [this.input, el("figcaption", { text: t.input })]),
        el("figure", {}, [this.recon, el("figcaption", { text: t.reconstruction })]),
      ]),
      el("figure", {}, [this.bars, el("figcaption", { text: t.code_bars })]),
    ]);
    this.root.append(el("div", { class: "draw" }, [left, right]));
    undo.addEventListener("click", () => {
      this.strokes.pop();
      this.changed();
    });
    clear.addEventListener("click", () => {
      this.strokes = [];
      this.changed();
    });
    this.bindPointer();
  }

  bindPointer() {
    const point = (event) => {
      const rect = this.ink.getBoundingClientRect();
      const x = ((event.clientX - rect.left) * INK) / rect.width;
      const y = ((event.clientY - rect.top) * INK) / rect.height;
      return [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
    };
    this.ink.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      this.ink.setPointerCapture(event.pointerId);
      this.active = event.pointerId;
      const start = point(event);
      this.strokes.push([start]);
      this.strokeUpdates = 0;
      this.pen();
      this.ctx.beginPath();
      this.ctx.arc(start[0], start[1], PEN / 2, 0, 2 * Math.PI);
      this.ctx.fill();
      this.compute(event.timeStamp);
    });
    this.ink.addEventListener("pointermove", (event) => {
      if (this.active !== event.pointerId) return;
      const stroke = this.strokes[this.strokes.length - 1];
      const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
      for (const e of events.length ? events : [event]) {
        const next = point(e);
        this.segment(stroke[stroke.length - 1], next); // only the new piece: a move costs the same all stroke long
        stroke.push(next);
      }
      this.compute(event.timeStamp);
    });
    const end = (event) => {
      if (this.active !== event.pointerId) return;
      this.active = null;
      record(this.metrics.strokeUpdates, this.strokeUpdates);
      this.commit();
    };
    this.ink.addEventListener("pointerup", end);
    this.ink.addEventListener("pointercancel", end);
  }

  pen() {
    const ctx = this.ctx;
    ctx.strokeStyle = "#fff";
    ctx.fillStyle = "#fff";
    ctx.lineWidth = PEN;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
  }

  segment(from, to) {
    this.pen();
    this.ctx.beginPath();
    this.ctx.moveTo(from[0], from[1]);
    this.ctx.lineTo(to[0], to[1]);
    this.ctx.stroke();
  }

  inkBox() {
    // The strokes' bounding box, widened past the pen's reach: everything outside it is black.
    let [x0, y0, x1, y1] = [INK, INK, 0, 0];
    for (const stroke of this.strokes) {
      for (const [x, y] of stroke) [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
    }
    const reach = PEN / 2 + 3;
    return [Math.floor(x0 - reach), Math.floor(y0 - reach), Math.ceil(x1 + reach), Math.ceil(y1 + reach)];
  }

  readInk() {
    // The pixels to_mnist needs. Away from the border, the box alone gives the same result as the whole
    // canvas (black border, so the paper is black; the ink's box is inside); near it, read everything.
    const [x0, y0, x1, y1] = this.inkBox();
    if (x0 <= 0 || y0 <= 0 || x1 >= INK || y1 >= INK) return [this.ctx.getImageData(0, 0, INK, INK).data, INK, INK];
    return [this.ctx.getImageData(x0, y0, x1 - x0, y1 - y0).data, x1 - x0, y1 - y0];
  }

  repaintInk() {
    const ctx = this.ctx;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, INK, INK);
    ctx.strokeStyle = "#fff";
    ctx.fillStyle = "#fff";
    ctx.lineWidth = PEN;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    for (const stroke of this.strokes) {
      if (stroke.length === 1) {
        ctx.beginPath();
        ctx.arc(stroke[0][0], stroke[0][1], PEN / 2, 0, 2 * Math.PI);
        ctx.fill();
        continue;
      }
      ctx.beginPath();
      ctx.moveTo(stroke[0][0], stroke[0][1]);
      for (let i = 1; i < stroke.length; i++) ctx.lineTo(stroke[i][0], stroke[i][1]);
      ctx.stroke();
    }
  }

  changed() {
    this.repaintInk();
    this.compute(performance.now());
    this.commit();
  }

  compute(timeStamp) {
    this.digit = this.strokes.length ? toMnist(...this.readInk()) : new Float32Array(FIELD * FIELD);
    paint(this.input, this.digit);
    const blank = !this.digit.some((v) => v > 0);
    if (!this.model || !this.model.encoder || blank) {
      this.code = null;
      this.pixels.fill(0);
      paint(this.recon, this.pixels);
      this.drawBars();
      return;
    }
    this.code = encode(this.model, this.digit, this.label);
    decode(this.model, this.code.mean, this.pixels, this.label);
    paint(this.recon, this.pixels);
    this.drawBars();
    this.metrics.updates += 1;
    if (this.active !== null && this.active !== undefined) this.strokeUpdates += 1;
    if (timeStamp !== undefined) {
      record(this.metrics.latency, performance.now() - timeStamp);
      afterFrame((frame) => record(this.metrics.frameLatency, frame - timeStamp));
    }
  }

  drawBars() {
    // One row per dimension: a bar from 0 to the mean, a line for mean ± one standard deviation.
    const ctx = this.bars.getContext("2d");
    const { width } = this.bars;
    const L = this.model ? this.model.L : 0;
    const row = 16;
    if (this.bars.height !== Math.max(row * L, row)) this.bars.height = Math.max(row * L, row);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, width, this.bars.height);
    const x0 = 40;
    const scale = (width - x0 - 8) / (2 * SPAN);
    const mid = x0 + SPAN * scale;
    ctx.fillStyle = "#444";
    ctx.font = "11px sans-serif";
    for (let j = 0; j < L; j++) ctx.fillText(`z${j}`, 4, j * row + 12);
    ctx.fillStyle = "#bbb";
    ctx.fillRect(mid, 0, 1, this.bars.height);
    if (!this.code) return;
    for (let j = 0; j < L; j++) {
      const mean = clampCode(this.code.mean[j]);
      const sd = Math.exp(0.5 * this.code.logVar[j]);
      ctx.fillStyle = "#4c78a8";
      ctx.fillRect(Math.min(mid, mid + mean * scale), j * row + 3, Math.abs(mean * scale), row - 6);
      ctx.fillStyle = "#222";
      const lo = mid + clampCode(mean - sd) * scale;
      const hi = mid + clampCode(mean + sd) * scale;
      ctx.fillRect(lo, j * row + row / 2 - 1, hi - lo, 2);
    }
  }

  commit() {
    const blank = !this.digit.some((v) => v > 0);
    this.send("drawing", {
      strokes: this.strokes,
      digit: blank ? null : Array.from(this.digit, (v) => Math.round(v * 1e6) / 1e6),
    });
  }

  update(meta, model) {
    const label = meta.label ?? 0;
    if (model !== this.model) {
      this.model = model;
      this.label = label;
      record(this.metrics.weights, { version: model.version, lagMs: Date.now() - meta.sent_at, at: performance.now() });
      this.compute();
    } else if (label !== this.label) {
      this.label = label;
      this.compute();
    }
  }
}

// ---- mounting: one instrument per parentElement, kept across reruns ----

export default function mount(component) {
  const { parentElement, data, setStateValue } = component;
  if (!data) return undefined;
  const { meta, weights } = readEnvelope(data);
  let state = STATES.get(parentElement);
  if (!state || state.mode !== meta.mode || state.signature !== meta.signature) {
    if (state) state.root.remove();
    const root = el("div", { class: "vi-root", "data-mode": meta.mode });
    parentElement.append(root);
    state = { mode: meta.mode, signature: meta.signature, root, send: setStateValue };
    const send = (name, value) => state.send(name, value);
    state.instrument = meta.mode === "draw" ? new Drawer(root, meta, send) : new Explorer(root, meta, send);
    root.instrument = state.instrument; // for the browser test: metrics and the last results
    STATES.set(parentElement, state);
    setStateValue("ready", true); // the server can leave out its own sliders: they would only go stale
  }
  state.send = setStateValue; // the latest one: a rerun may hand a new function
  record(state.instrument.metrics.arrivals, { lagMs: Date.now() - meta.sent_at, bytes: data.length, at: performance.now() });
  const model = modelFor(weights, meta.weights_key);
  if (model) state.instrument.update(meta, model);
  else if (state.asked !== meta.weights_key) {
    state.asked = meta.weights_key; // once per key: the server then sends the weights themselves
    setStateValue("need", meta.weights_key);
  }
  const mounted = state;
  return () => {
    // Only the latest cleanup runs, and it may run early: remove only what this mount made, once.
    if (STATES.get(parentElement) !== mounted) return;
    STATES.delete(parentElement);
    mounted.root.remove();
  };
}
