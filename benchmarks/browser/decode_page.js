// The page side of bench_viewer.py's decode-and-paint benchmark (issue 13 item 6a).
//
// Loads one case of TileUpdate bodies written by `relay-bench codec --save-bodies`
// (DIR/CASE/NNNN.bin and meta.json, served under /bodies/) and plays them through the
// browser's own decoder, Sources/RelayServer/Web/Static/js/tiles.js, painting each update
// as the viewer page does (viewer.js `showScreen` and `paint`): one ImageData over the
// decoder's framebuffer, a 2D context with {alpha: false}, and per update one
// putImageData(imageData, 0, 0, x, y, width, height) of the union of its parts' dirty
// rectangles. Between updates the page yields one task, so the browser renders frames
// as it would between WebSocket messages.
//
// Per pass a new TileDecoder (a new zlib stream) takes the case's first update (the full
// refresh) untimed; the rest are timed. Passes repeat until `seconds` have been timed.
// A separate loop times the inflate alone on a DecompressionStream, fed as tiles.js
// feeds its own (16 KiB slices, output read while writing), so that the decode time can
// be split into inflate and parse + draw.

import { DEFAULT_MAXIMUM_INFLATED_BYTES, Inflater, TileDecoder } from '/js/tiles.js';

const loaded = new Map();

async function load(name) {
  if (loaded.has(name)) return loaded.get(name);
  const response = await fetch(`/bodies/${encodeURIComponent(name)}/meta.json`);
  if (!response.ok) throw new Error(`/bodies/${name}/meta.json: HTTP ${response.status}`);
  const meta = await response.json();
  const bodies = await Promise.all(
    Array.from({ length: meta.bodies }, async (_, index) => {
      const file = `/bodies/${encodeURIComponent(name)}/${String(index).padStart(4, '0')}.bin`;
      const reply = await fetch(file);
      if (!reply.ok) throw new Error(`${file}: HTTP ${reply.status}`);
      return new Uint8Array(await reply.arrayBuffer());
    }),
  );
  const entry = { meta, bodies };
  loaded.set(name, entry);
  return entry;
}

// One task's yield (a MessageChannel message, not setTimeout's clamped delay).
const channel = new MessageChannel();
const waiting = [];
channel.port1.onmessage = () => waiting.shift()();
function yieldTask() {
  return new Promise((resolve) => {
    waiting.push(resolve);
    channel.port2.postMessage(0);
  });
}

function union(a, b) {
  if (!a) return b;
  if (!b) return a;
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return {
    x,
    y,
    width: Math.max(a.x + a.width, b.x + b.width) - x,
    height: Math.max(a.y + a.height, b.y + b.height) - y,
  };
}

async function sha256(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

function summary(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const total = sorted.reduce((sum, value) => sum + value, 0);
  return { count: sorted.length, mean: total / sorted.length, median: at(0.5), p95: at(0.95), max: sorted[sorted.length - 1] };
}

/**
 * Decode and paint one case for at least `seconds` of timed updates. Returns the rate,
 * per-update times (apply = inflate + parse + draw in tiles.js; paint = putImageData),
 * the frames the browser rendered meanwhile, and the pixel checks (not when profiling).
 */
export async function decodeCase(name, { seconds = 2, minimumPasses = 1, profile = false } = {}) {
  const { meta, bodies } = await load(name);
  const canvas = document.getElementById('screen');
  canvas.width = meta.width;
  canvas.height = meta.height;
  const context = canvas.getContext('2d', { alpha: false });
  const apply = [];
  const paint = [];
  const perUpdate = [];
  let timed = 0;
  let updates = 0;
  let passes = 0;
  let checks = null;
  // Frames the browser rendered while updates were timed (a requestAnimationFrame count).
  let rendered = 0;
  let counting = true;
  let inTimedPart = false;
  const countFrames = () => {
    if (!counting) return;
    if (inTimedPart) rendered += 1;
    requestAnimationFrame(countFrames);
  };
  while (passes < minimumPasses || timed < seconds * 1000) {
    const decoder = new TileDecoder(meta.width, meta.height);
    const image = new ImageData(decoder.pixels, meta.width, meta.height);
    for (const index of meta.updates[0].bodies) await decoder.apply(bodies[index]);
    context.putImageData(image, 0, 0);
    await yieldTask();
    if (passes === 0) requestAnimationFrame(countFrames);
    inTimedPart = true;
    // With DevTools' Profiler enabled (bench_viewer.py --profile), each pass's timed part is
    // one console profile: the new decoder and the first, full update stay out of it.
    if (profile) console.profile(`${name} pass ${passes}`);
    const start = performance.now();
    for (let number = 1; number < meta.updates.length; number++) {
      const began = performance.now();
      let dirty = null;
      for (const index of meta.updates[number].bodies) dirty = union(dirty, (await decoder.apply(bodies[index])).dirty);
      const applied = performance.now();
      if (dirty) context.putImageData(image, 0, 0, dirty.x, dirty.y, dirty.width, dirty.height);
      const painted = performance.now();
      apply.push(applied - began);
      paint.push(painted - applied);
      await yieldTask();
      perUpdate.push(performance.now() - began);
    }
    context.getImageData(0, 0, 1, 1); // any canvas work still queued is done before the clock stops
    timed += performance.now() - start;
    if (profile) console.profileEnd(`${name} pass ${passes}`);
    inTimedPart = false;
    updates += meta.updates.length - 1;
    if (passes === 0 && !profile) {
      const framebuffer = await sha256(decoder.pixels);
      const shown = await sha256(context.getImageData(0, 0, meta.width, meta.height).data);
      checks = {
        framebuffer_equals_last_frame: framebuffer === meta.final_rgba_sha256,
        canvas_equals_framebuffer: shown === framebuffer,
      };
    }
    decoder.close();
    passes += 1;
  }
  counting = false;
  return {
    case: name,
    width: meta.width,
    height: meta.height,
    passes,
    updates,
    timed_ms: timed,
    updates_per_second: (updates * 1000) / timed,
    // A pass shorter than a few frames says nothing about the frame rate.
    frames_rendered_per_second: timed / passes >= 100 ? (rendered * 1000) / timed : null,
    body_bytes_per_update: (meta.body_bytes - meta.updates[0].bodies.reduce((sum, index) => sum + bodies[index].length, 0)) / (meta.updates.length - 1),
    inflated_bytes_per_update: (meta.inflated_bytes - meta.updates[0].inflated) / (meta.updates.length - 1),
    apply_ms: summary(apply),
    paint_ms: summary(paint),
    update_ms: summary(perUpdate),
    checks,
  };
}

/**
 * The inflate alone: the case's zlib bytes through one DecompressionStream per pass, fed
 * and read by tiles.js's own Inflater. Returns milliseconds per update (first excluded).
 */
export async function inflateCase(name, { seconds = 1, minimumPasses = 1 } = {}) {
  const { meta, bodies } = await load(name);
  const times = [];
  let timed = 0;
  let passes = 0;
  while (passes < minimumPasses || timed < seconds * 1000) {
    const inflater = new Inflater();
    for (let number = 0; number < meta.updates.length; number++) {
      const began = performance.now();
      let length = 0;
      for (const index of meta.updates[number].bodies) {
        length += (await inflater.inflate(bodies[index].subarray(4), DEFAULT_MAXIMUM_INFLATED_BYTES)).length;
      }
      const took = performance.now() - began;
      if (length !== meta.updates[number].inflated) {
        throw new Error(`${name}: update ${number} inflated to ${length} bytes, meta.json says ${meta.updates[number].inflated}`);
      }
      if (number > 0) {
        times.push(took);
        timed += took;
      }
    }
    inflater.close();
    passes += 1;
  }
  return { case: name, passes, inflate_ms: summary(times) };
}

window.bench = { decodeCase, inflateCase };
document.body.dataset.ready = 'yes';
