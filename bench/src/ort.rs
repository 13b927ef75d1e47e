//! Client of `bench/ort_driver.py --serve`: one long-lived Python process per harness run that
//! holds the onnxruntime sessions and times them on request (JSON lines over stdin/stdout).
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

pub struct Ort {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub version: String,
}

/// The interpreter: `KILN_BENCH_PYTHON` or `python3`.
pub fn python() -> String {
    std::env::var("KILN_BENCH_PYTHON").unwrap_or_else(|_| "python3".into())
}

impl Ort {
    /// Starts the driver and checks that onnxruntime imports. The error says how to fix it.
    pub fn start(driver: &Path) -> Result<Ort, String> {
        let py = python();
        let mut child = Command::new(&py)
            .arg(driver)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start `{py}`: {e}"))?;
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut ort = Ort {
            child,
            stdin,
            stdout,
            version: String::new(),
        };
        match ort.call(json!({"op": "version"})) {
            Ok(v) => {
                ort.version = v["onnxruntime"].as_str().unwrap_or("?").to_string();
                Ok(ort)
            }
            Err(e) => {
                let _ = ort.child.kill();
                let mut err = String::new();
                if let Some(mut s) = ort.child.stderr.take() {
                    use std::io::Read;
                    let _ = s.read_to_string(&mut err);
                }
                Err(format!(
                    "{e}\n{}",
                    err.lines().rev().take(3).collect::<Vec<_>>().join("\n")
                ))
            }
        }
    }

    fn call(&mut self, cmd: Value) -> Result<Value, String> {
        writeln!(self.stdin, "{cmd}").map_err(|e| format!("onnxruntime driver: write: {e}"))?;
        self.stdin.flush().map_err(|e| e.to_string())?;
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(|e| format!("onnxruntime driver: read: {e}"))?;
        if n == 0 {
            return Err("onnxruntime driver exited (is onnxruntime installed? \
                        `pip install -r tools/requirements.txt`)"
                .into());
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| format!("onnxruntime driver: bad reply {line:?}: {e}"))?;
        if v["ok"] == json!(true) {
            Ok(v)
        } else {
            Err(format!(
                "onnxruntime: {}",
                v["error"].as_str().unwrap_or("?")
            ))
        }
    }

    /// Loads a model; the reply holds the output shapes and fingerprints (`checks`).
    pub fn load(
        &mut self,
        key: &str,
        model: &Path,
        inputs: &[(String, std::path::PathBuf)],
        threads: usize,
    ) -> Result<Value, String> {
        let ins: serde_json::Map<String, Value> = inputs
            .iter()
            .map(|(n, p)| (n.clone(), json!(p.to_string_lossy())))
            .collect();
        self.call(
            json!({"op": "load", "key": key, "model": model.to_string_lossy(),
                         "inputs": ins, "threads": threads}),
        )
    }

    /// Per-call milliseconds of each sample (`inner` calls per sample), after `warmup` calls.
    pub fn time(
        &mut self,
        key: &str,
        warmup: usize,
        samples: usize,
        inner: usize,
    ) -> Result<Vec<f64>, String> {
        let v = self.call(json!({"op": "time", "key": key, "warmup": warmup,
                                 "samples": samples, "inner": inner}))?;
        Ok(v["ms"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default())
    }

    pub fn unload(&mut self, key: &str) {
        let _ = self.call(json!({"op": "unload", "key": key}));
    }
}

impl Drop for Ort {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"op": "quit"}));
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}
