//! The runner of Klaxon's durable outbox.
//!
//! A [`Runner`] claims due jobs from the [`Store`], runs each with the [`Handler`] registered
//! for its kind, under a timeout, and records the outcome under its claim: success, a retry
//! after an exponential backoff with jitter (or after the `Retry-After` the handler reports),
//! or a dead letter once the attempts run out or the failure is permanent. While jobs run, the
//! runner renews its leases; a runner that dies stops renewing, its leases run out, and
//! another runner (another replica, or this one restarted) claims the jobs again.
//!
//! Jobs carry ids, not state: a handler reloads what it needs, and uses the job's key as the
//! idempotency key of its external call (and [`JobContext::save_checkpoint`] between steps),
//! so that running it again after a crash does not repeat its effect.

mod backoff;
mod clock;
mod handler;
mod runner;

pub use backoff::RetryPolicy;
pub use clock::{Clock, ManualClock, SystemClock};
pub use handler::{store_error, Done, Handler, JobContext, JobError};
pub use runner::{Runner, RunnerConfig, RunnerStats};

pub use klaxon_store::Store;
