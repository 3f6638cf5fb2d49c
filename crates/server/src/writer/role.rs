//! The writer's role as an explicit state machine: what it may do now, and what it does next.
//!
//! [`step`] is pure: from the role, what just happened ([`Input`]) and the lease as the keeper
//! sees it ([`Lease`]), it gives the next role and the one thing to do ([`Do`]). The loop in
//! `writer::run` does that thing, which yields the next input. Every (role, input, lease) case
//! is unit-tested below without threads, a store or a clock. The requests of a group are
//! carried through as `G` and never looked at, so the tests use `()`.

use dealledger_log::Certainty;

/// While the writer cannot write, it tries to recover this often, traffic or not, so that
/// readiness comes back by itself once the store does.
pub const RECOVER_RETRY_MS: u64 = 1_000;
/// A standby reads the store's end this often, to serve what the writer acknowledged; a writer
/// with a lease looks at it this often, traffic or not.
pub const FOLLOW_INTERVAL_MS: u64 = 100;

/// Why the writer cannot write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What the failed write left in the store: with nothing stored a barrier proves the store
    /// writable again; with an unknown outcome the ledger is rebuilt from the store.
    pub certainty: Certainty,
    /// The failure that stopped the writer.
    pub why: String,
    /// Why the last try to recover failed, while it fails. Only the last: an outage of hours
    /// is tried thousands of times.
    pub last_try: Option<String>,
}

impl Failure {
    pub fn new(certainty: Certainty, why: impl Into<String>) -> Failure {
        Failure { certainty, why: why.into(), last_try: None }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)?;
        match &self.last_try {
            Some(last) => write!(f, "; recovering failed: {last}"),
            None => Ok(()),
        }
    }
}

/// The store's end as a standby last read it: its last block's key (`None`: empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreEnd(pub Option<u64>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Another daemon holds the writer lease, or nobody yet: this one follows the store for
    /// its readers and answers writes 503 naming the writer. `followed`: the end it last read;
    /// `failed`: a write's failure not recovered from when the lease went (readiness names it,
    /// a stop keeps it, a takeover, which rebuilds what is in doubt, clears it).
    Standby { followed: Option<StoreEnd>, failed: Option<Failure> },
    /// It commits what is queued.
    Writing,
    /// A write failed: it recovers (every [`RECOVER_RETRY_MS`]) before it writes again, and
    /// answers requests "nothing stored" meanwhile.
    Recovering(Failure),
    /// Asked to stop: the last group is disposed of, then the loop ends. Holds a failure that
    /// was not recovered from (the daemon's exit then says the store failed).
    Stopping(Option<Failure>),
}

impl Role {
    /// The first role: a sole writer writes; with a lease, the first turn takes over if the
    /// lease is held.
    pub fn first(leased: bool) -> Role {
        match leased {
            true => Role::Standby { followed: None, failed: None },
            false => Role::Writing,
        }
    }

    /// Why the writer cannot write, while it cannot: what readiness names, and what a stop
    /// ends the daemon with.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Role::Recovering(failure)
            | Role::Stopping(Some(failure))
            | Role::Standby { failed: Some(failure), .. } => Some(failure),
            Role::Standby { failed: None, .. } | Role::Writing | Role::Stopping(None) => None,
        }
    }

    /// Standing by from this role: the failure, if any, goes along.
    fn standing_by(&self) -> Role {
        Role::Standby { followed: None, failed: self.failure().cloned() }
    }
}

/// The writer lease as the keeper sees it now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lease {
    /// No lease: this daemon is the store's only writer.
    Sole,
    Held,
    NotHeld,
}

/// What just happened: the outcome of the last thing done. Closed: nothing else moves the
/// writer.
#[derive(Debug, PartialEq, Eq)]
pub enum Input<G> {
    /// A turn with nothing new: the first, or a wait that saw no request.
    Turn,
    /// Requests to dispose of; `then_stop` when a stop was queued after them.
    Group { group: G, then_stop: bool },
    /// A stop with nothing before it, or the queue's senders are gone.
    Stop,
    /// A standby read the store's end.
    Followed(StoreEnd),
    /// The commit, the recovery or the takeover succeeded.
    Done,
    /// It failed.
    Failed(Failure),
    /// Another writer appended: the commit stored nothing, and this writer's state is stale.
    Fenced(String),
}

/// Why the requests of a group are answered without being tried: nothing of them is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The lease lapsed while the group gathered (or this daemon stands by).
    NotTheWriter,
    /// The writer is recovering from this failure.
    CannotWrite(String),
}

/// The one thing the writer does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Do<G> {
    /// Follow the store (when its end moved) and answer writes 503 naming the writer, for
    /// [`FOLLOW_INTERVAL_MS`].
    StandBy,
    /// Bring the ledger to the store's end and start writing.
    TakeOver,
    /// A barrier (nothing was stored) or a reopen (an unknown outcome).
    Recover(Certainty),
    /// Wait for requests, at most this long (`None`: until one comes).
    Gather {
        wait_ms: Option<u64>,
    },
    Commit(G),
    Refuse(G, Refusal),
    /// Give the lease up: another writer appended.
    StepDown(String),
    Stop,
}

/// The next role and what to do, from the role, what just happened and the lease.
pub fn step<G>(role: &Role, input: Input<G>, lease: Lease) -> (Role, Do<G>) {
    let leased = lease != Lease::Sole;
    match (role, input) {
        (Role::Stopping(failure), Input::Failed(new)) => {
            (Role::Stopping(failure.clone().or(Some(new))), Do::Stop)
        }
        (Role::Stopping(failure), Input::Fenced(why)) if !leased => {
            let failure = failure.clone().or(Some(Failure::new(Certainty::Unknown, why)));
            (Role::Stopping(failure), Do::Stop)
        }
        (Role::Stopping(failure), Input::Fenced(why)) => (Role::Stopping(failure.clone()), Do::StepDown(why)),
        (Role::Stopping(failure), Input::Group { group, .. }) => {
            (Role::Stopping(failure.clone()), Do::Refuse(group, refusal(role, lease)))
        }
        (Role::Stopping(failure), _) => (Role::Stopping(failure.clone()), Do::Stop),
        (_, Input::Stop) => (Role::Stopping(role.failure().cloned()), Do::Stop),
        (_, Input::Group { group, then_stop }) => {
            let commit = *role == Role::Writing && lease != Lease::NotHeld;
            let next = match then_stop {
                true => Role::Stopping(role.failure().cloned()),
                false => role.clone(),
            };
            match commit {
                true => (next, Do::Commit(group)),
                false => (next, Do::Refuse(group, refusal(role, lease))),
            }
        }
        (_, Input::Fenced(why)) if leased => (role.standing_by(), Do::StepDown(why)),
        (_, Input::Fenced(why)) => next(Role::Recovering(Failure::new(Certainty::Unknown, why)), lease),
        (Role::Standby { failed, .. }, Input::Followed(end)) => {
            next(Role::Standby { followed: Some(end), failed: failed.clone() }, lease)
        }
        (_, Input::Followed(_)) => next(role.clone(), lease),
        // A try to recover (or a takeover, which rebuilds what is in doubt) failed: the first
        // failure stays the one named, with this try's.
        (Role::Recovering(failure) | Role::Standby { failed: Some(failure), .. }, Input::Failed(new)) => {
            let failure =
                Failure { certainty: new.certainty, why: failure.why.clone(), last_try: Some(new.why) };
            match (role, lease) {
                // Tried just now: the next try after a wait, in which requests are answered.
                (Role::Recovering(_), Lease::Sole | Lease::Held) => {
                    (Role::Recovering(failure), Do::Gather { wait_ms: Some(RECOVER_RETRY_MS) })
                }
                _ => next(Role::Recovering(failure), lease),
            }
        }
        (_, Input::Failed(failure)) => next(Role::Recovering(failure), lease),
        (Role::Standby { .. } | Role::Recovering(_), Input::Done) => next(Role::Writing, lease),
        (_, Input::Done | Input::Turn) => next(role.clone(), lease),
    }
}

/// What a role does when nothing new happened: the lease first (only a holder writes or
/// recovers), then the role's own work.
fn next<G>(role: Role, lease: Lease) -> (Role, Do<G>) {
    match (role, lease) {
        (Role::Stopping(failure), _) => (Role::Stopping(failure), Do::Stop),
        (role @ Role::Standby { .. }, Lease::NotHeld) => (role, Do::StandBy),
        (role, Lease::NotHeld) => (role.standing_by(), Do::StandBy),
        (role @ Role::Standby { .. }, _) => (role, Do::TakeOver),
        (Role::Recovering(failure), _) => {
            let certainty = failure.certainty;
            (Role::Recovering(failure), Do::Recover(certainty))
        }
        (Role::Writing, Lease::Held) => (Role::Writing, Do::Gather { wait_ms: Some(FOLLOW_INTERVAL_MS) }),
        (Role::Writing, _) => (Role::Writing, Do::Gather { wait_ms: None }),
    }
}

/// Why a group is not tried: without the lease this daemon is not the writer (whatever else is
/// wrong); with it, the failure it is recovering from.
fn refusal(role: &Role, lease: Lease) -> Refusal {
    match role.failure() {
        Some(failure) if lease != Lease::NotHeld => Refusal::CannotWrite(failure.to_string()),
        _ => Refusal::NotTheWriter,
    }
}

#[cfg(test)]
mod tests {
    //! Every (role, input, lease) case: the whole table is written out in `transitions.txt`
    //! (read it to review the writer's behaviour), and the invariants the daemon's answers
    //! rest on are checked over all of it.
    #![allow(clippy::unwrap_used, reason = "a test: a panic is a failing test")]

    use super::*;

    fn failure(certainty: Certainty, why: &str) -> Failure {
        Failure::new(certainty, why)
    }

    fn roles() -> Vec<Role> {
        let retried = Failure { last_try: Some("try".into()), ..failure(Certainty::Unknown, "first") };
        vec![
            Role::Standby { followed: None, failed: None },
            Role::Standby { followed: Some(StoreEnd(Some(7))), failed: None },
            Role::Standby { followed: None, failed: Some(failure(Certainty::Unknown, "first")) },
            Role::Writing,
            Role::Recovering(failure(Certainty::NothingStored, "first")),
            Role::Recovering(retried),
            Role::Stopping(None),
            Role::Stopping(Some(failure(Certainty::Unknown, "first"))),
        ]
    }

    fn inputs() -> Vec<Input<()>> {
        vec![
            Input::Turn,
            Input::Group { group: (), then_stop: false },
            Input::Group { group: (), then_stop: true },
            Input::Stop,
            Input::Followed(StoreEnd(Some(9))),
            Input::Done,
            Input::Failed(failure(Certainty::NothingStored, "new")),
            Input::Failed(failure(Certainty::Unknown, "new")),
            Input::Fenced("fenced".into()),
        ]
    }

    const LEASES: [Lease; 3] = [Lease::Sole, Lease::Held, Lease::NotHeld];

    /// (role, input, lease, next role, what to do).
    type Case = (Role, Input<()>, Lease, Role, Do<()>);

    fn cases() -> Vec<Case> {
        let mut cases = Vec::new();
        for role in roles() {
            for input in inputs() {
                for lease in LEASES {
                    let shown = format!("{input:?}");
                    let (next, action) = step(&role, input_from(&shown), lease);
                    cases.push((role.clone(), input_from(&shown), lease, next, action));
                }
            }
        }
        cases
    }

    /// Inputs are not Clone (a group's requests are not): each case gets its own.
    fn input_from(shown: &str) -> Input<()> {
        inputs().into_iter().find(|i| format!("{i:?}") == shown).unwrap()
    }

    fn show(role: &Role) -> String {
        match role {
            Role::Standby { followed, failed } => {
                let at = followed.map_or(String::new(), |StoreEnd(end)| format!(" at {end:?}"));
                let failed = failed.as_ref().map_or(String::new(), |f| format!(", failed: {f}"));
                format!("Standby{at}{failed}")
            }
            Role::Writing => "Writing".into(),
            Role::Recovering(f) | Role::Stopping(Some(f)) => {
                let name = if matches!(role, Role::Recovering(_)) { "Recovering" } else { "Stopping" };
                format!("{name}({:?}, {f})", f.certainty)
            }
            Role::Stopping(None) => "Stopping".into(),
        }
    }

    #[test]
    fn every_case_is_as_the_table_says() {
        let mut table = String::new();
        for (role, input, lease, next, action) in cases() {
            table.push_str(&format!(
                "{} | {input:?} | {lease:?} => {} | {action:?}\n",
                show(&role),
                show(&next)
            ));
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/writer/transitions.txt");
        if std::env::var_os("DEALLEDGER_BLESS").is_some() {
            std::fs::write(path, &table).unwrap();
        }
        let expected = std::fs::read_to_string(path).unwrap();
        let differ: Vec<_> = table.lines().zip(expected.lines()).filter(|(a, b)| a != b).collect();
        assert!(
            differ.is_empty() && table.lines().count() == expected.lines().count(),
            "the transitions differ from {path} (DEALLEDGER_BLESS=1 writes them, to review): {differ:#?}"
        );
    }

    #[test]
    fn only_a_writer_holding_the_lease_commits_and_every_group_is_answered() {
        for (role, input, lease, _, action) in cases() {
            let had_group = matches!(input, Input::Group { .. });
            let disposed = matches!(action, Do::Commit(()) | Do::Refuse((), _));
            assert_eq!(had_group, disposed, "{role:?} {input:?} {lease:?} => {action:?}");
            if matches!(action, Do::Commit(())) {
                assert_eq!(role, Role::Writing, "{input:?} {lease:?}");
                assert_ne!(lease, Lease::NotHeld, "{role:?} {input:?}");
            }
        }
    }

    #[test]
    fn without_the_lease_nothing_writes_and_a_sole_writer_never_stands_by() {
        for (role, input, lease, next, action) in cases() {
            let writes = matches!(action, Do::TakeOver | Do::Recover(_) | Do::Commit(()));
            if lease == Lease::NotHeld {
                assert!(!writes, "{role:?} {input:?} => {action:?}");
            }
            if lease == Lease::Sole && !matches!(role, Role::Standby { .. }) {
                assert!(!matches!(next, Role::Standby { .. }), "{role:?} {input:?} => {next:?}");
                assert!(!matches!(action, Do::StandBy | Do::StepDown(_)), "{role:?} {input:?} => {action:?}");
            }
        }
    }

    #[test]
    fn a_stop_is_final_and_keeps_the_failure() {
        for (role, input, lease, next, action) in cases() {
            let asked = matches!(input, Input::Stop | Input::Group { then_stop: true, .. });
            if asked || matches!(role, Role::Stopping(_)) {
                assert!(matches!(next, Role::Stopping(_)), "{role:?} {input:?} {lease:?} => {next:?}");
            }
            if matches!(input, Input::Stop) {
                assert_eq!(action, Do::Stop, "{role:?} {lease:?}");
            }
            if let Some(failure) = role.failure() {
                if matches!(next, Role::Stopping(_)) {
                    assert_eq!(next.failure().map(|f| &f.why), Some(&failure.why), "{role:?} {input:?}");
                }
            }
        }
    }

    #[test]
    fn a_failure_is_recovered_by_its_own_means_and_named_once() {
        for (role, input, lease, next, action) in cases() {
            if let Do::Recover(certainty) = action {
                assert_eq!(
                    Some(certainty),
                    next.failure().map(|f| f.certainty),
                    "{role:?} {input:?} {lease:?}"
                );
            }
            if let Some(failure) = next.failure() {
                assert_eq!(
                    failure.to_string().matches("recovering failed").count(),
                    usize::from(failure.last_try.is_some())
                );
            }
        }
        // A thousand failed tries name the first failure and the last try only.
        let mut role = Role::Writing;
        let mut input = Input::<()>::Failed(failure(Certainty::Unknown, "the barrier failed"));
        for n in 0..1_000 {
            let (next, _) = step(&role, input, Lease::Sole);
            role = next;
            input = Input::Failed(failure(Certainty::NothingStored, &format!("try {n}")));
        }
        assert_eq!(role.failure().unwrap().to_string(), "the barrier failed; recovering failed: try 998");
    }
}

#[cfg(test)]
mod lease_loss {
    //! A failure outlives a lost lease: readiness names it, and a stop keeps it, until a
    //! takeover (which rebuilds what is in doubt) succeeds.
    #![allow(clippy::unwrap_used, reason = "a test: a panic is a failing test")]

    use super::*;

    #[test]
    fn a_failure_survives_a_lost_lease_until_a_takeover() {
        let failure = Failure::new(Certainty::Unknown, "the barrier failed");
        for from in [Input::<()>::Turn, Input::Failed(failure.clone())] {
            let role = match from {
                Input::Turn => Role::Recovering(failure.clone()),
                _ => Role::Writing,
            };
            let (standby, action) = step(&role, from, Lease::NotHeld);
            assert_eq!(action, Do::StandBy);
            assert_eq!(standby.failure(), Some(&failure), "{role:?} stood by");
            let (still, _) = step(&standby, Input::<()>::Followed(StoreEnd(Some(3))), Lease::NotHeld);
            assert_eq!(still.failure(), Some(&failure));
            let (stopping, action) = step(&still, Input::<()>::Stop, Lease::NotHeld);
            assert_eq!((stopping.failure(), action), (Some(&failure), Do::Stop));
            let (writing, _) = step(&still, Input::<()>::Done, Lease::Held);
            assert_eq!(writing, Role::Writing, "a takeover clears it");
        }
    }

    #[test]
    fn without_the_lease_a_group_is_refused_as_not_the_writer() {
        let recovering = Role::Recovering(Failure::new(Certainty::NothingStored, "full"));
        let (_, action) = step(&recovering, Input::Group { group: (), then_stop: false }, Lease::NotHeld);
        assert_eq!(action, Do::Refuse((), Refusal::NotTheWriter));
        let (_, action) = step(&recovering, Input::Group { group: (), then_stop: false }, Lease::Held);
        assert_eq!(action, Do::Refuse((), Refusal::CannotWrite("full".into())));
    }
}
