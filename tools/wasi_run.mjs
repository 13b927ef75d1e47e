// Runs a wasm32-wasip1 program (e.g. a `cargo test` binary) under Node's WASI, as a cargo
// runner: CARGO_TARGET_WASM32_WASIP1_RUNNER="node --experimental-wasm-relaxed-simd tools/wasi_run.mjs".
// The host's root is preopened as `/`, so tests reading fixtures through absolute paths
// (env!("CARGO_MANIFEST_DIR")) find them; the environment is passed through; the exit code is
// the program's.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import process from "node:process";

const [wasm, ...args] = process.argv.slice(2);
const wasi = new WASI({
  version: "preview1",
  args: [wasm, ...args],
  env: process.env,
  preopens: { "/": "/" },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(wasm));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
