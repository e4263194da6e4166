//! The loop of a thread in a bounded pool of our own (password hashing,
//! RSA signing): the pools differ in what they count and how they refuse
//! work, not in how a thread takes its next job.

use std::sync::{Mutex, mpsc};

/// Run jobs from the shared queue until every sender is gone (the pool was
/// dropped) or the queue's lock is poisoned.
pub fn run_jobs<J: FnOnce()>(queue: &Mutex<mpsc::Receiver<J>>) {
    loop {
        let job = match queue.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            // Every sender is gone: the thread ends.
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_every_job_then_ends_with_the_senders() {
        let (tx, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let (seen_tx, seen) = mpsc::channel();
        for i in 0..3 {
            let seen_tx = seen_tx.clone();
            let _ = tx.send(Box::new(move || {
                let _ = seen_tx.send(i);
            }));
        }
        drop(tx);
        run_jobs(&Mutex::new(rx));
        assert_eq!(seen.try_iter().collect::<Vec<_>>(), [0, 1, 2]);
    }
}
