// The WebAssembly benchmark (bench `wasm` mode; docs/benchmarks.md): kiln's wasm32-wasip1 builds
// (one per target-feature set) against onnxruntime-web (wasm backend, one thread, SIMD) on the
// same model files and the same input bytes; kiln's builds run as child Node processes.
//
//   node [--experimental-wasm-relaxed-simd] run.mjs quick|all OUT_JSON LABEL=KILN.wasm[:KILN_ISA]...
//
// Per case: every peer loads the model once and warms up; then ROUNDS rounds each take SAMPLES
// samples of every peer, in rotating order, so slow phases of a shared machine hit all peers.
// A sample is the mean of `inner` back-to-back calls (≥ SAMPLE_MS). kiln's output is checked
// against onnxruntime-web's (relative L2 error) so a broken build cannot post a fast time.
import { writeFile, mkdtemp } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";
import process from "node:process";
import * as ort from "onnxruntime-web";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const [mode, outJson, ...peerArgs] = process.argv.slice(2);
const all = mode === "all";
const ROUNDS = all ? 5 : 2;
const SAMPLES = all ? 4 : 2;
const SAMPLE_MS = all ? 150 : 40;

// A kiln build: runs one WASI command of its binary (tools/wasi_run.mjs, in a child Node with
// this process's flags) and returns stdout. Not in this process: Node 20 crashed (V8 heap
// corruption) after some dozens of in-process WASI instances of the 30 MB module.
function kilnPeer(label, wasmPath, isa) {
  const call = async (args) => {
    const env = { ...process.env };
    if (isa) env.KILN_ISA = isa;
    else delete env.KILN_ISA;
    return execFileSync(
      process.execPath,
      [...process.execArgv, join(root, "tools/wasi_run.mjs"), wasmPath, ...args],
      { env, encoding: "utf8", maxBuffer: 1 << 24, stdio: ["ignore", "pipe", "inherit"] },
    );
  };
  return { label, call };
}

// Wall clock, as the native bench: run on a quiet machine. (Process CPU time is no better under
// Node: it also counts V8's helper threads, about as much again as the model's own thread.)
const nowMs = () => performance.now();

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

// Relative L2 error of y against ref.
function relErr(y, ref) {
  if (y.length !== ref.length) return Infinity;
  let d = 0, m = 0;
  for (let i = 0; i < y.length; i++) {
    d += (y[i] - ref[i]) ** 2;
    m += ref[i] ** 2;
  }
  return Math.sqrt(d / Math.max(m, 1e-30));
}

async function ortPeer(caseMeta) {
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.simd = true;
  const session = await ort.InferenceSession.create(join(root, caseMeta.onnx), {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });
  const feeds = {};
  for (const inp of caseMeta.inputs) {
    const buf = readFileSync(inp.file);
    const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    const data = inp.dtype === "int64" ? new BigInt64Array(ab) : new Float32Array(ab);
    feeds[inp.name] = new ort.Tensor(inp.dtype, data, inp.shape);
  }
  const once = async () => session.run(feeds);
  const out = (await once())[caseMeta.output].data;
  const t0 = nowMs();
  let calls = 0;
  while (calls < 2 || nowMs() - t0 < 100) {
    await once();
    calls++;
  }
  const inner = Math.max(1, Math.round(SAMPLE_MS / ((nowMs() - t0) / calls)));
  const sample = async () => {
    const t = nowMs();
    for (let i = 0; i < inner; i++) await once();
    return (nowMs() - t) / inner;
  };
  return { out: Float32Array.from(out), sample, inner, release: () => session.release() };
}

const kilns = peerArgs.map((a) => {
  const [label, rest] = a.split("=");
  const [path, isa] = rest.split(":");
  return kilnPeer(label, resolve(path), isa);
});
const names = (await kilns[0].call(["list", mode])).trim().split("\n");
const work = await mkdtemp(join(tmpdir(), "kiln-wasm-bench-"));
const results = [];
for (const name of names) {
  const meta = JSON.parse(await kilns[0].call(["inputs", name, work]));
  const ortRun = await ortPeer(meta);
  const samples = { "onnxruntime-web": [] };
  const info = { "onnxruntime-web": { inner: ortRun.inner } };
  const errors = {};
  for (let r = 0; r < ROUNDS; r++) {
    const order = ["onnxruntime-web", ...kilns.map((k) => k.label)];
    for (let i = 0; i < order.length; i++) {
      const label = order[(i + r) % order.length];
      if (label === "onnxruntime-web") {
        for (let s = 0; s < SAMPLES; s++) samples[label].push(await ortRun.sample());
        continue;
      }
      const k = kilns.find((p) => p.label === label);
      const outFile = join(work, `${label}.out`);
      const res = JSON.parse(await k.call(["run", name, String(SAMPLES), String(SAMPLE_MS), outFile]));
      (samples[label] ??= []).push(...res.samples);
      info[label] = { inner: res.inner, isa: res.isa };
      const b = readFileSync(outFile);
      const y = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      errors[label] = relErr(y, ortRun.out);
    }
  }
  await ortRun.release();
  const row = { case: name, peers: {} };
  const ortMed = median(samples["onnxruntime-web"]);
  for (const [label, xs] of Object.entries(samples)) {
    row.peers[label] = {
      median_ms: median(xs),
      min_ms: Math.min(...xs),
      max_ms: Math.max(...xs),
      ratio_vs_ort: median(xs) / ortMed,
      samples: xs,
      ...info[label],
      ...(label in errors ? { rel_l2_err_vs_ort: errors[label] } : {}),
    };
  }
  results.push(row);
  const cells = Object.entries(row.peers)
    .map(([l, p]) => `${l} ${p.median_ms.toFixed(2)} ms${l in errors ? ` (${p.ratio_vs_ort.toFixed(2)}x, err ${errors[l].toExponential(1)}, ${p.isa})` : ""}`)
    .join(" | ");
  console.log(`${name}: ${cells}`);
  // A wrong kiln build must not post a time: int8 paths differ from onnxruntime-web only by
  // the rounding of requantization (about 1 % relative L2 on these models).
  for (const [l, e] of Object.entries(errors)) {
    // PP-OCR det's sigmoid map on a random 64x96 input: its many requantizations round apart
    // from onnxruntime's (kiln's bits equal its scalar path; fetch_ppocr.py checks real images).
    const tol = name.startsWith("ppocr_det") ? 0.35 : 0.05;
    if (!(e < tol)) throw new Error(`${name}: ${l} output differs from onnxruntime-web (relative L2 error ${e})`);
  }
}
const meta = { mode, node: process.version, ort_web: ort.env.versions?.web ?? "", date: new Date().toISOString() };
await writeFile(outJson, JSON.stringify({ ...meta, results }, null, 1));
// The markdown table: median ms per call (min–max), and kiln's time as a multiple of
// onnxruntime-web's.
const labels = ["onnxruntime-web", ...kilns.map((k) => k.label)];
const lines = [
  `WebAssembly (${mode}): Node ${meta.node}, onnxruntime-web ${meta.ort_web} (wasm, 1 thread), ` +
    `${meta.date}; median ms per call (min–max), × = kiln / onnxruntime-web`,
  "",
  `| case | ${labels.join(" | ")} |`,
  `|---|${labels.map(() => "---").join("|")}|`,
  ...results.map((r) => {
    const cells = labels.map((l) => {
      const p = r.peers[l];
      const t = `${p.median_ms.toFixed(2)} (${p.min_ms.toFixed(2)}–${p.max_ms.toFixed(2)})`;
      return l === "onnxruntime-web" ? t : `${t} **${p.ratio_vs_ort.toFixed(2)}×**`;
    });
    return `| ${r.case} | ${cells.join(" | ")} |`;
  }),
];
await writeFile(outJson.replace(/\.json$/, "") + ".md", lines.join("\n") + "\n");
