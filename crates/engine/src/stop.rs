//! Stop strings over streamed text: text that could be the start of a stop
//! string is held back until it is known not to be, so a partial stop match
//! is never emitted, and the text before a completed match is released.

/// The streaming matcher.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

/// What feeding text produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// Text safe to emit now (may be empty).
    Emit(String),
    /// A stop string matched: emit `before`, then stop.
    Stop {
        /// Text before the match.
        before: String,
        /// The stop string that matched.
        stop: String,
    },
}

impl StopMatcher {
    /// A matcher for non-empty stop strings.
    pub fn new(stops: &[String]) -> StopMatcher {
        StopMatcher {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    /// Feeds text; returns what may be emitted.
    pub fn feed(&mut self, text: &str) -> StopOutcome {
        if self.stops.is_empty() {
            return StopOutcome::Emit(text.to_string());
        }
        self.held.push_str(text);
        // A complete match: cut at the earliest one.
        if let Some((at, stop)) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()).map(|at| (at, s)))
            .min_by_key(|x| x.0)
        {
            let out = StopOutcome::Stop {
                before: self.held[..at].to_string(),
                stop: stop.clone(),
            };
            self.held.clear();
            return out;
        }
        // Hold the longest suffix that is a proper prefix of some stop string.
        let mut keep = 0;
        for s in &self.stops {
            for (i, _) in self.held.char_indices() {
                let suffix = &self.held[i..];
                if suffix.len() > keep && s.starts_with(suffix) {
                    keep = suffix.len();
                    break;
                }
            }
        }
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        StopOutcome::Emit(out)
    }

    /// Releases held text (end of generation, or a special token breaking the text).
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_matches_are_held_and_released() {
        let mut m = StopMatcher::new(&["END".into(), "\n\n".into()]);
        assert_eq!(m.feed("hello E"), StopOutcome::Emit("hello ".into()));
        assert_eq!(m.feed("N"), StopOutcome::Emit("".into()));
        assert_eq!(m.feed("x"), StopOutcome::Emit("ENx".into()));
        assert_eq!(m.feed("ab\n"), StopOutcome::Emit("ab".into()));
        assert_eq!(
            m.feed("\nrest"),
            StopOutcome::Stop {
                before: "".into(),
                stop: "\n\n".into()
            }
        );
        let mut m = StopMatcher::new(&["stop".into()]);
        assert_eq!(m.feed("a sto"), StopOutcome::Emit("a ".into()));
        assert_eq!(
            m.feed("p there"),
            StopOutcome::Stop {
                before: "".into(),
                stop: "stop".into()
            }
        );
        let mut m = StopMatcher::new(&["é!".into()]);
        assert_eq!(m.feed("café"), StopOutcome::Emit("caf".into()));
        assert_eq!(m.flush(), "é");
    }
}
