//! The epoll tokens of the event loop: what a ready fd is.
//!
//! epoll hands back one `u64` per event; [`Token`] is its meaning, in one place. The fixed
//! fds (signalfd, the alarm, the worker eventfd, the control listener, the dashboard's
//! eventfd, the inbox's inotify, the agents' step) take the top values; control connections take a range
//! from [`CONN_BASE`] up; child and notifier output pipes take their slot number, below.
//!
//! Owns: the numbering. Must not: know what the fds are for beyond their kind.

/// The first connection token: connection `slot` is `CONN_BASE + slot`.
const CONN_BASE: u64 = 1 << 62;
/// The first fixed token (the lowest of the named ones): connections end below it.
const FIXED_BASE: u64 = u64::MAX - 6;

/// What a ready fd is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Token {
    /// The signalfd (SIGCHLD, SIGTERM, SIGINT, SIGHUP).
    Signal,
    /// The control socket's listener.
    Listener,
    /// The dashboard thread's request for a snapshot.
    Http,
    /// The eventfd of worker threads (in-process tasks, registered notifiers).
    Worker,
    /// The inotify watch on the request inbox.
    Inbox,
    /// The alarm's timerfd (the next deadline).
    Alarm,
    /// The agents' step: srun's output (issue 18).
    Agents,
    /// Control connection in this slot.
    Conn(usize),
    /// Output pipe (of a run or a notifier) in this slot.
    Pipe(usize),
}

impl Token {
    /// Most pipe slots (slots from here on would reach the connections' range).
    pub(super) const MAX_PIPES: usize = CONN_BASE as usize;
    /// Most connection slots.
    pub(super) const MAX_CONNS: usize = (FIXED_BASE - CONN_BASE) as usize;

    /// The epoll data of this token.
    pub(super) fn to_u64(self) -> u64 {
        match self {
            Token::Signal => u64::MAX,
            Token::Listener => u64::MAX - 1,
            Token::Http => u64::MAX - 2,
            Token::Worker => u64::MAX - 3,
            Token::Inbox => u64::MAX - 4,
            Token::Alarm => u64::MAX - 5,
            Token::Agents => FIXED_BASE,
            Token::Conn(slot) => {
                debug_assert!(slot < Token::MAX_CONNS);
                CONN_BASE + slot as u64
            }
            Token::Pipe(slot) => {
                debug_assert!(slot < Token::MAX_PIPES);
                slot as u64
            }
        }
    }

    /// The token of epoll data `v` (every `u64` is one).
    pub(super) fn from_u64(v: u64) -> Token {
        match v {
            u64::MAX => Token::Signal,
            v if v == u64::MAX - 1 => Token::Listener,
            v if v == u64::MAX - 2 => Token::Http,
            v if v == u64::MAX - 3 => Token::Worker,
            v if v == u64::MAX - 4 => Token::Inbox,
            v if v == u64::MAX - 5 => Token::Alarm,
            FIXED_BASE => Token::Agents,
            v if v >= CONN_BASE => Token::Conn((v - CONN_BASE) as usize),
            v => Token::Pipe(v as usize),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_FIXED: [Token; 7] = [
        Token::Signal,
        Token::Listener,
        Token::Http,
        Token::Worker,
        Token::Inbox,
        Token::Alarm,
        Token::Agents,
    ];

    #[test]
    fn every_token_round_trips_including_the_range_boundaries() {
        let mut tokens = ALL_FIXED.to_vec();
        tokens.extend([
            Token::Pipe(0),
            Token::Pipe(1),
            Token::Pipe(Token::MAX_PIPES - 1),
            Token::Conn(0),
            Token::Conn(1),
            Token::Conn(Token::MAX_CONNS - 1),
        ]);
        for t in tokens {
            assert_eq!(Token::from_u64(t.to_u64()), t, "{t:?} as {}", t.to_u64());
        }
    }

    #[test]
    fn the_ranges_do_not_overlap() {
        let fixed: Vec<u64> = ALL_FIXED.iter().map(|t| t.to_u64()).collect();
        let mut unique = fixed.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), fixed.len(), "two fixed tokens share a value");
        let last_pipe = Token::Pipe(Token::MAX_PIPES - 1).to_u64();
        let first_conn = Token::Conn(0).to_u64();
        let last_conn = Token::Conn(Token::MAX_CONNS - 1).to_u64();
        assert_eq!(
            last_pipe + 1,
            first_conn,
            "pipes end where connections start"
        );
        assert!(
            last_conn < *unique.first().unwrap(),
            "connections end below the fixed"
        );
        assert_eq!(
            last_conn + 1,
            *unique.first().unwrap(),
            "no gap below the fixed"
        );
        // Every value decodes, the ones between the kinds included.
        assert_eq!(Token::from_u64(last_pipe + 1), Token::Conn(0));
        assert_eq!(Token::from_u64(last_conn + 1), Token::Agents);
        assert_eq!(
            Token::from_u64(first_conn - 1),
            Token::Pipe(Token::MAX_PIPES - 1)
        );
    }
}
