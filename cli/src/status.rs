//! What a long command is doing, on stderr: `kiln: reading model.onnx (227 MB)…`. Only for
//! big models and only when stderr is a terminal, so scripts and small models see nothing.
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

/// Models at least this big get status lines (reading and compiling them takes seconds).
const BIG: u64 = 32 << 20;

pub struct Status {
    on: bool,
    what: String,
    start: Instant,
}

impl Status {
    pub fn for_model(model: &Path) -> Status {
        let size = std::fs::metadata(model).map(|m| m.len()).unwrap_or(0);
        Status::new(
            wanted(size, std::io::stderr().is_terminal()),
            format!("{} ({})", model.display(), crate::inspect::bytes(size)),
        )
    }
    fn new(on: bool, what: String) -> Status {
        Status {
            on,
            what,
            start: Instant::now(),
        }
    }
    /// Replaces the status line with `phase`.
    pub fn phase(&self, phase: &str) {
        if self.on {
            let t = self.start.elapsed().as_secs_f32();
            let _ = write!(
                std::io::stderr(),
                "\r\x1b[Kkiln: {phase} {}… ({t:.1} s)",
                self.what
            );
            let _ = std::io::stderr().flush();
        }
    }
    /// Clears the status line.
    pub fn done(&self) {
        if self.on {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
            let _ = std::io::stderr().flush();
        }
    }
}

/// Status lines only for big models on a terminal.
fn wanted(size: u64, terminal: bool) -> bool {
    terminal && size >= BIG
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_big_models_on_a_terminal() {
        assert!(wanted(BIG, true));
        assert!(!wanted(BIG - 1, true));
        assert!(!wanted(1 << 40, false));
    }
}
