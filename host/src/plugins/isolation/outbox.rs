//! Frames on their way to a child, in order, without ever blocking the sender.
//!
//! A frame is sent at once from the caller's thread (the event loop) when nothing is
//! ahead of it: one `send` with `MSG_DONTWAIT`, which returns rather than blocks when
//! the socket's buffer is full. What does not go out that way (a full buffer, or frames
//! already waiting) is queued for the writer thread, which sends in order and blocks
//! while the child does not read. So a child that stopped reading holds up only its own
//! writer, never the event loop, and the common case costs one system call instead of a
//! hand-off to another thread (a futex wake and a context switch per call).

use std::collections::VecDeque;
use std::io::{self, Write as _};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rustix::net::{SendFlags, send};

#[derive(Default)]
struct Queue {
    frames: VecDeque<Vec<u8>>,
    /// The writer took a frame off the queue and is sending it: later frames wait.
    writing: bool,
    /// No more frames go out: the socket failed, or the outbox was closed.
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Every change is a push, a pop or a flag: nothing is half-done.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending side. Dropping it (or [`Outbox::close`]) ends the writer thread once the
/// queued frames are out.
pub(crate) struct Outbox {
    socket: UnixStream,
    shared: Arc<Shared>,
}

impl Outbox {
    /// An outbox on `socket`, and the writer's loop to run on a thread of its own.
    pub(crate) fn new(socket: UnixStream) -> io::Result<(Outbox, impl FnOnce() + Send)> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
        });
        let writer_socket = socket.try_clone()?;
        let writer_shared = Arc::clone(&shared);
        let writer = move || write_queued(writer_socket, &writer_shared);
        Ok((Outbox { socket, shared }, writer))
    }

    /// Sends `frame` after every frame sent before it. Never blocks. A frame that
    /// cannot be sent because the socket failed is dropped: the reader sees the
    /// socket end and reports the child's death to every call.
    pub(crate) fn send(&self, frame: Vec<u8>) {
        let mut queue = self.shared.lock();
        if queue.closed {
            return;
        }
        if queue.frames.is_empty() && !queue.writing {
            // Holding the lock across this call is fine: it does not block.
            match send(
                &self.socket,
                &frame,
                SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            ) {
                Ok(sent) if sent == frame.len() => return,
                // Part of it went out: the rest must be next.
                Ok(sent) => queue.frames.push_back(frame[sent..].to_vec()),
                // Full (EAGAIN), or failing: the writer waits, or finds the failure.
                Err(_) => queue.frames.push_back(frame),
            }
        } else {
            queue.frames.push_back(frame);
        }
        drop(queue);
        self.shared.ready.notify_one();
    }

    /// Sends nothing more once the queued frames are out; the writer thread ends.
    pub(crate) fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_one();
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread: sends queued frames in order, blocking while the child does not
/// read, until the outbox is closed and empty or the socket fails.
fn write_queued(mut socket: UnixStream, shared: &Shared) {
    loop {
        let frame = {
            let mut queue = shared.lock();
            loop {
                if let Some(frame) = queue.frames.pop_front() {
                    queue.writing = true;
                    break frame;
                }
                if queue.closed {
                    return;
                }
                queue = shared
                    .ready
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let written = socket.write_all(&frame);
        let mut queue = shared.lock();
        queue.writing = false;
        if written.is_err() {
            queue.closed = true;
            queue.frames.clear();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::io::Read as _;

    fn frame(tag: u8, len: usize) -> Vec<u8> {
        vec![tag; len]
    }

    #[test]
    fn frames_arrive_whole_and_in_order_even_when_the_reader_lags() {
        let (host, mut child) = UnixStream::pair().unwrap();
        let (outbox, writer) = Outbox::new(host).unwrap();
        let writer = std::thread::spawn(writer);
        // Far more than a socket buffer holds, with nobody reading yet: the sender
        // never blocks, the writer queues behind the full buffer.
        let frames: Vec<Vec<u8>> = (0..64u8).map(|tag| frame(tag, 64 * 1024)).collect();
        for frame in &frames {
            outbox.send(frame.clone());
        }
        // The writer keeps its own end until the queue is out; then the child sees the end.
        drop(outbox);
        let mut received = Vec::new();
        child.read_to_end(&mut received).unwrap_or_default();
        writer.join().unwrap();
        let expected: Vec<u8> = frames.concat();
        assert_eq!(received.len(), expected.len());
        assert!(received == expected, "frames arrived out of order or cut");
    }

    #[test]
    fn a_small_frame_goes_out_from_the_callers_thread() {
        let (host, mut child) = UnixStream::pair().unwrap();
        let (outbox, _writer) = Outbox::new(host).unwrap();
        // No writer thread runs: only the direct send can deliver it.
        outbox.send(frame(7, 100));
        let mut received = [0u8; 100];
        child.read_exact(&mut received).unwrap();
        assert_eq!(received, [7u8; 100]);
    }

    #[test]
    fn a_broken_socket_drops_frames_without_blocking() {
        let (host, child) = UnixStream::pair().unwrap();
        drop(child);
        let (outbox, writer) = Outbox::new(host).unwrap();
        let writer = std::thread::spawn(writer);
        for _ in 0..10 {
            outbox.send(frame(1, 1024 * 1024));
        }
        drop(outbox);
        writer.join().unwrap();
    }
}
