// scoretool review: the page. Plain JavaScript, no build step, nothing fetched from elsewhere.
// Every request carries the session's token; every caption and prompt is put in as text, never HTML.
"use strict";

const token = document.body.dataset.token;
const $ = (id) => document.getElementById(id);
let state = null;      // the server's last answer (/api/state)
let curves = null;     // the soundtrack's waveform and loudness (/api/curves)
let shownVersion = -1; // the render the player and the curves show
let shownScenes = "";  // the scenes as last drawn, to redraw only when they change
let queue = Promise.resolve(); // edits, undo and renders are sent one after another, in order
let pollTimer = null;

function url(path, params = {}) {
  return `${path}?${new URLSearchParams({ ...params, token })}`;
}

async function call(method, path, body) {
  const response = await fetch(url(path), {
    method,
    headers: { "Content-Type": "application/json", "X-Scoretool-Token": token },
    body,
  });
  const data = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// Send a change; show the new state, or the reason it was refused (beside the scene, if any).
function send(path, body, where) {
  queue = queue
    .then(() => call("POST", path, body))
    .then((s) => { showError(null, where); update(s); })
    .catch((e) => showError(e.message, where));
  return queue;
}

function showError(text, where) {
  const box = where ? where.querySelector(".error") : $("message");
  if (!where) $("message").hidden = !text;
  if (where) box.hidden = !text;
  box.textContent = text || "";
}

function seconds(t) {
  const m = Math.floor(t / 60);
  return `${m}:${(t - 60 * m).toFixed(1).padStart(4, "0")}`;
}

function el(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

// --- the state -------------------------------------------------------------------------------
function update(s) {
  state = s;
  const job = s.render;
  $("plan-path").textContent = s.plan_path;
  $("render").disabled = job.running;
  $("undo").disabled = job.running || !s.can_undo;
  $("progress").hidden = !job.running;
  if (job.running && job.total) { $("progress").max = job.total; $("progress").value = job.done; }
  else $("progress").removeAttribute("value");
  $("status").textContent = statusLine(s);
  $("log").textContent = job.lines.join("\n");
  $("log").scrollTop = $("log").scrollHeight;
  const scenes = JSON.stringify([s.plan.scenes, s.presets, s.plan.settings.preset, job.running, s.rendered]);
  if (scenes !== shownScenes) { shownScenes = scenes; drawScenes(); }
  if (s.version !== shownVersion) loadMedia(s.version);
  clearTimeout(pollTimer); // one poll at a time, while a render runs
  if (job.running) pollTimer = setTimeout(poll, 400);
}

function statusLine(s) {
  const job = s.render;
  if (job.running) return `rendering: ${job.stage || "starting"}${job.total ? ` ${job.done}/${job.total}` : ""}`;
  if (job.error) return `render failed: ${job.error}`;
  if (!s.rendered) return "not rendered yet: press Render";
  const clips = s.cache.clip || { hits: 0, misses: 0 };
  const made = `music: ${clips.misses} scene(s) generated, ${clips.hits} from the cache`;
  return s.up_to_date ? `up to date (${made})` : `edited since the last render: press Render (${made})`;
}

async function poll() {
  try { update(await call("GET", "/api/state")); } catch (e) { showError(e.message); }
}

async function loadMedia(version) {
  shownVersion = version;
  const video = $("video");
  const at = video.currentTime || 0;
  video.src = url("/media/video", { v: version });
  video.addEventListener("loadedmetadata", () => { video.currentTime = Math.min(at, video.duration || at); }, { once: true });
  $("download").href = url("/media/video", { download: 1, v: version });
  curves = state.rendered ? await call("GET", "/api/curves") : null;
  drawWave();
}

// --- the timeline: scene blocks, waveform, cuts, loudness ----------------------------------------
function drawTimeline() {
  const blocks = $("blocks");
  blocks.replaceChildren();
  for (const scene of state.plan.scenes) {
    const block = el("div", { className: "block", title: `Scene ${scene.number}: ${seconds(scene.start)}–${seconds(scene.end)}` },
      [el("span", { textContent: scene.number })]);
    block.dataset.number = scene.number;
    block.style.flexGrow = scene.end - scene.start;
    if (scene.frames.length) {
      const middle = Math.floor(scene.frames.length / 2);
      block.style.backgroundImage = `url("${url(`/media/thumb/${scene.number}/${middle}`)}")`;
    }
    block.addEventListener("click", () => seek(scene.start));
    blocks.append(block);
  }
}

function drawWave() {
  const canvas = $("wave");
  const ratio = window.devicePixelRatio || 1;
  canvas.width = canvas.clientWidth * ratio;
  canvas.height = canvas.clientHeight * ratio;
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  g.clearRect(0, 0, w, h);
  if (!state) return;
  const duration = state.plan.scenes[state.plan.scenes.length - 1].end;
  const x = (t) => (t / duration) * w;
  if (curves) {
    g.fillStyle = "#6fa8dc";
    curves.peaks.forEach(([low, high], i) => {
      const left = (i / curves.peaks.length) * w;
      g.fillRect(left, h / 2 - high * h / 2, Math.max(1, w / curves.peaks.length), Math.max(1, (high - low) * h / 2));
    });
    g.strokeStyle = "#f5a623"; g.lineWidth = 2 * ratio; g.beginPath();
    curves.loudness.forEach(([t, lufs], i) => {
      const y = h - ((Math.max(lufs, -60) + 60) / 60) * h;
      if (i) g.lineTo(x(t), y); else g.moveTo(x(t), y);
    });
    g.stroke();
  }
  g.fillStyle = "#e0625b";
  for (const scene of state.plan.scenes.slice(1)) g.fillRect(x(scene.start) - ratio, 0, 2 * ratio, h);
  const now = $("video").currentTime || 0;
  g.fillStyle = "#fff"; g.fillRect(x(now), 0, ratio, h);
}

function seek(t) {
  $("video").currentTime = t;
  drawWave();
}

function markCurrent() {
  const t = $("video").currentTime;
  for (const block of $("blocks").children) {
    const scene = state.plan.scenes[block.dataset.number - 1];
    block.classList.toggle("current", t >= scene.start && t < scene.end);
  }
  drawWave();
}

// --- one card per scene ------------------------------------------------------------------------
let cardsFor = ""; // the cards are built again only when the scenes' bounds or the presets change
function drawScenes() {
  const layout = JSON.stringify([state.plan.scenes.map((s) => [s.start, s.end, s.frames]), state.presets, state.plan.settings.preset]);
  if (layout !== cardsFor) {
    cardsFor = layout;
    drawTimeline();
    $("scenes").replaceChildren(...state.plan.scenes.map(sceneCard));
  }
  for (const scene of state.plan.scenes) fillCard($(`scene-${scene.number}`), scene);
  drawWave();
}

function sceneCard(scene) {
  const n = scene.number;
  const card = el("article", { className: "scene", id: `scene-${n}` });
  const path = `/api/scenes/${n}`;
  const frames = scene.frames.map((t, i) => el("figure", {}, [
    el("img", { src: url(`/media/thumb/${n}/${i}`), alt: `scene ${n}, frame at ${seconds(t)}` }),
    el("figcaption"),
  ]));
  const prompt = el("textarea", { className: "prompt", placeholder: "empty: the bridge writes one at the next Render" });
  prompt.addEventListener("change", () => send(path, JSON.stringify({ prompt: prompt.value }), card));
  const preset = el("select", { className: "preset" }, presetOptions());
  preset.addEventListener("change", () => send(path, JSON.stringify({ preset: preset.value || null }), card));
  const seed = el("input", { className: "seed", type: "number", min: 0, step: 1 });
  // Digits go as they are (a seed may be past what a JavaScript number holds exactly); the server checks.
  seed.addEventListener("change", () => send(path, /^\d+$/.test(seed.value) ? `{"seed": ${seed.value}}` : JSON.stringify({ seed: seed.value }), card));
  const take = el("button", { type: "button", className: "take", textContent: "New take", title: "the same prompt with another seed" });
  take.addEventListener("click", () => send(`${path}/take`, undefined, card));
  const play = el("button", { type: "button", className: "play", textContent: "▶ music alone" });
  play.addEventListener("click", () => playScene(n, play));
  const heading = el("h3", {}, [`Scene ${n} `, el("span", { className: "time", textContent: `${seconds(scene.start)}–${seconds(scene.end)} (${(scene.end - scene.start).toFixed(1)} s)` })]);
  heading.addEventListener("click", () => seek(scene.start));
  card.append(
    heading,
    el("div", { className: "frames" }, frames),
    el("p", {}, [el("b", { textContent: "Scene caption: " }), el("span", { className: "caption" })]),
    el("label", {}, ["Prompt", prompt]),
    el("p", { className: "source" }),
    el("div", { className: "row" }, [el("label", {}, ["Preset ", preset]), el("label", {}, ["Seed ", seed]), take, play]),
    el("p", { className: "error", hidden: true }),
  );
  return card;
}

// The card shows the scene as the plan has it; a field being typed in is left alone.
function fillCard(card, scene) {
  const q = (selector) => card.querySelector(selector);
  const set = (input, value) => { if (document.activeElement !== input) input.value = value; };
  set(q(".prompt"), scene.prompt || "");
  set(q(".preset"), scene.preset || "");
  set(q(".seed"), scene.seed ?? "");
  card.querySelectorAll("figcaption").forEach((c, i) => { c.textContent = scene.frame_captions[i] || ""; });
  q(".caption").textContent = scene.caption || "";
  q(".source").textContent = [scene.prompt_source ? `prompt from: ${scene.prompt_source}` : "prompt: written at the next Render",
    scene.fallback_reason ? `fallback: ${scene.fallback_reason}` : ""].filter(Boolean).join(" — ");
  for (const input of [".prompt", ".preset", ".seed", ".take"]) q(input).disabled = state.render.running;
  q(".play").disabled = !state.rendered;
}

function presetOptions() {
  const video = state.plan.settings.preset;
  const options = [el("option", { value: "", textContent: video ? `(the video's: ${video})` : "(none)" })];
  for (const [name, description] of Object.entries(state.presets)) {
    options.push(el("option", { value: name, textContent: name, title: description }));
  }
  return options;
}

function playScene(n, button) {
  const audio = $("scene-audio");
  const src = url(`/media/stem/${n}`, { v: shownVersion });
  if (!audio.paused && audio.dataset.scene === String(n)) { audio.pause(); return; }
  $("video").pause();
  audio.src = src;
  audio.dataset.scene = n;
  audio.play().catch((e) => showError(`cannot play scene ${n}'s music: ${e.message}`));
  button.blur();
}

// --- actions -----------------------------------------------------------------------------------
async function exportFiles(kind) {
  $("export-result").textContent = `exporting ${kind}...`;
  try {
    const result = await call("POST", "/api/export", JSON.stringify({ kind }));
    $("export-result").textContent = `wrote ${result.written.join(", ")}`;
    showError(null);
  } catch (e) {
    $("export-result").textContent = "";
    showError(e.message);
  }
}

$("render").addEventListener("click", () => send("/api/render"));
$("undo").addEventListener("click", () => send("/api/undo"));
$("export-stems").addEventListener("click", () => exportFiles("stems"));
$("export-timeline").addEventListener("click", () => exportFiles($("timeline-format").value));
$("video").addEventListener("timeupdate", markCurrent);
$("video").addEventListener("seeked", markCurrent);
$("wave").addEventListener("click", (event) => {
  const box = $("wave").getBoundingClientRect();
  seek(((event.clientX - box.left) / box.width) * state.plan.scenes[state.plan.scenes.length - 1].end);
});
window.addEventListener("resize", drawWave);
poll();
