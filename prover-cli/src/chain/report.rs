//! Event lines of the chain commands and the watcher: one human line per event, or one
//! JSON object per line (`--json`), each with the time and, when several actors share a
//! process (the demo), who speaks.

use std::fmt::Display;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tokio::sync::mpsc::UnboundedSender;

/// Where the lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// Standard output (the watcher: its events are its output).
    Stdout,
    /// Standard error (one-shot commands, whose result goes to stdout).
    Stderr,
    /// Nowhere (a caller that only wants the result).
    Quiet,
}

/// Writes events.
#[derive(Clone, Debug)]
pub struct Reporter {
    json: bool,
    sink: Sink,
    who: Option<String>,
    /// Every event as a JSON object, for an in-process listener (the demo).
    tap: Option<UnboundedSender<Value>>,
}

/// Seconds since the Unix epoch, with milliseconds.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// `HH:MM:SS.mmm` (UTC) of a Unix time.
fn clock(t: f64) -> String {
    let ms = (t * 1000.0) as u64;
    let (s, ms) = (ms / 1000, ms % 1000);
    format!("{:02}:{:02}:{:02}.{ms:03}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

impl Reporter {
    /// Lines as JSON objects (`json`) or human text, to `sink`.
    pub fn new(json: bool, sink: Sink) -> Self {
        Reporter { json, sink, who: None, tap: None }
    }

    /// The same reporter, also sending every event (as its JSON object) to `tap`.
    pub fn tapped(&self, tap: UnboundedSender<Value>) -> Self {
        Reporter { tap: Some(tap), ..self.clone() }
    }

    /// The same reporter, naming the actor in every line.
    pub fn named(&self, who: impl Into<String>) -> Self {
        Reporter { who: Some(who.into()), ..self.clone() }
    }

    /// One event: `event` names it, `fields` (a JSON object) carries its data, `human`
    /// is the line a person reads.
    pub fn event(&self, event: &str, fields: Value, human: impl Display) {
        let t = unix_now();
        let mut m = Map::new();
        m.insert("ts".into(), json!((t * 1000.0).round() / 1000.0));
        if let Some(w) = &self.who {
            m.insert("who".into(), json!(w));
        }
        m.insert("event".into(), json!(event));
        if let Value::Object(f) = fields {
            m.extend(f);
        }
        let object = Value::Object(m);
        if let Some(tap) = &self.tap {
            // A listener that went away no longer needs the events.
            let _ = tap.send(object.clone());
        }
        let line = if self.json {
            object.to_string()
        } else {
            match &self.who {
                Some(w) => format!("{} [{w}] {human}", clock(t)),
                None => format!("{} {human}", clock(t)),
            }
        };
        // A closed or full pipe must not stop a service: the line is dropped.
        let _ = match self.sink {
            Sink::Stdout => writeln!(std::io::stdout().lock(), "{line}"),
            Sink::Stderr => writeln!(std::io::stderr().lock(), "{line}"),
            Sink::Quiet => Ok(()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::clock;

    #[test]
    fn clock_is_utc_time_of_day() {
        // `date -u -d @1796003846.25 +%T.%3N` prints 01:57:26.250.
        assert_eq!(clock(1_796_003_846.25), "01:57:26.250");
        assert_eq!(clock(0.0), "00:00:00.000");
    }
}
