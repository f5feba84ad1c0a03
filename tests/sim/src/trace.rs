//! The record of a run: every input the engine was given and every output
//! it produced, in order, with the simulated time.

use std::time::Duration;

use nightjar::engine::{DialRequest, Input, Output};

/// One thing that crossed the engine's boundary.
#[derive(Debug, Clone)]
pub enum TraceEvent {
    /// Given to [`nightjar::engine::Engine::handle`].
    Input(Input),
    /// Returned by [`nightjar::engine::Engine::poll_output`].
    Output(Output),
}

/// A [`TraceEvent`] and when it happened.
#[derive(Debug, Clone)]
pub struct TraceEntry {
    /// Simulated time since the start of the run.
    pub at: Duration,
    /// What happened.
    pub event: TraceEvent,
}

impl TraceEntry {
    /// The input, if this is one.
    pub fn input(&self) -> Option<&Input> {
        match &self.event {
            TraceEvent::Input(i) => Some(i),
            TraceEvent::Output(_) => None,
        }
    }

    /// The output, if this is one.
    pub fn output(&self) -> Option<&Output> {
        match &self.event {
            TraceEvent::Output(o) => Some(o),
            TraceEvent::Input(_) => None,
        }
    }
}

/// A dial the engine asked for, and when.
#[derive(Debug, Clone)]
pub struct DialRecord {
    /// Simulated time of the `Dial` output.
    pub at: Duration,
    /// The request as the engine made it.
    pub request: DialRequest,
}
