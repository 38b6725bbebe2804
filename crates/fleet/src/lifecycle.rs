//! A machine's life as a state machine, sans I/O: ordered -> produced -> shipped ->
//! (held by customs -> released) -> delivered -> deployed -> failed -> sent for repair ->
//! back (deployed again), and retired from any state. [`next`] is the only place that says
//! which event may follow which state; the import, the API and the repair tickets all go
//! through it, so a wrong transition is refused the same way everywhere, naming the state.

use std::fmt;
use std::str::FromStr;

use crate::date::Date;

/// Where a machine is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Paid for (or on order), not yet built.
    Ordered,
    Produced,
    /// On its way.
    Shipped,
    /// Held by customs (FCC authorisation, classification, UFLPA review...).
    CustomsHold,
    /// Released by customs, not yet at the farm.
    CustomsReleased,
    /// At the farm, not yet racked.
    Delivered,
    /// Racked and mining.
    Deployed,
    /// Out of service, at the farm.
    Failed,
    /// At (or on its way to) a repair centre.
    InRepair,
    /// Out of the fleet for good (scrapped, sold, seized, order cancelled).
    Retired,
}

/// What can happen to a machine (the `event` column of `events.csv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Produced,
    Shipped,
    CustomsHold,
    CustomsRelease,
    Delivered,
    /// Racked (again: after an on-site fix, or moved to another position).
    Deployed,
    Failed,
    RepairSent,
    RepairBack,
    Retired,
}

impl State {
    pub const ALL: [State; 10] = [
        State::Ordered,
        State::Produced,
        State::Shipped,
        State::CustomsHold,
        State::CustomsReleased,
        State::Delivered,
        State::Deployed,
        State::Failed,
        State::InRepair,
        State::Retired,
    ];

    pub fn name(self) -> &'static str {
        match self {
            State::Ordered => "ordered",
            State::Produced => "produced",
            State::Shipped => "shipped",
            State::CustomsHold => "customs_hold",
            State::CustomsReleased => "customs_released",
            State::Delivered => "delivered",
            State::Deployed => "deployed",
            State::Failed => "failed",
            State::InRepair => "in_repair",
            State::Retired => "retired",
        }
    }

    /// The events that may follow this state, in the order of a machine's life.
    pub fn allowed(self) -> Vec<Event> {
        Event::ALL
            .into_iter()
            .filter(|e| next(self, *e).is_ok())
            .collect()
    }

    /// Whether the machine mines in this state (its hashrate counts as the fleet's).
    pub fn mining(self) -> bool {
        self == State::Deployed
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<State, String> {
        State::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| format!("unknown state `{s}`"))
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl Event {
    pub const ALL: [Event; 10] = [
        Event::Produced,
        Event::Shipped,
        Event::CustomsHold,
        Event::CustomsRelease,
        Event::Delivered,
        Event::Deployed,
        Event::Failed,
        Event::RepairSent,
        Event::RepairBack,
        Event::Retired,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Event::Produced => "produced",
            Event::Shipped => "shipped",
            Event::CustomsHold => "customs_hold",
            Event::CustomsRelease => "customs_release",
            Event::Delivered => "delivered",
            Event::Deployed => "deployed",
            Event::Failed => "failed",
            Event::RepairSent => "repair_sent",
            Event::RepairBack => "repair_back",
            Event::Retired => "retired",
        }
    }
}

/// Why a text is not an event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown event `{0}`: one of produced, shipped, customs_hold, customs_release, delivered, deployed, failed, repair_sent, repair_back, retired")]
pub struct UnknownEvent(pub String);

impl FromStr for Event {
    type Err = UnknownEvent;
    fn from_str(s: &str) -> Result<Event, UnknownEvent> {
        Event::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| UnknownEvent(s.to_owned()))
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// An event refused: what the machine is and what may follow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("cannot record `{event}`: the machine is {state}{}", allowed_text(*state))]
    Transition { state: State, event: Event },
    #[error("cannot record `{event}` on {date}: the machine's last event ({last}) was on {last_date}, and dates may not go backwards")]
    Backwards {
        event: Event,
        date: Date,
        last: String,
        last_date: Date,
    },
    /// A machine in repair whose RMA shipment's hold does not fit the event.
    #[error("cannot record `{event}`: the machine is in_repair and its RMA shipment {why}")]
    Rma { event: Event, why: &'static str },
}

fn allowed_text(state: State) -> String {
    let allowed = state.allowed();
    if allowed.is_empty() {
        " (nothing may follow)".into()
    } else {
        let names: Vec<&str> = allowed.iter().map(|e| e.name()).collect();
        format!(" (next may be: {})", names.join(", "))
    }
}

/// The state `event` leads to from `state`, or why it may not happen.
pub fn next(state: State, event: Event) -> Result<State, Refused> {
    use Event as E;
    use State as S;
    let to = match (state, event) {
        (S::Retired, _) => None,
        (_, E::Retired) => Some(S::Retired),
        (S::Ordered, E::Produced) => Some(S::Produced),
        (S::Produced, E::Shipped) => Some(S::Shipped),
        (S::Shipped, E::CustomsHold) => Some(S::CustomsHold),
        (S::Shipped | S::CustomsReleased, E::Delivered) => Some(S::Delivered),
        (S::CustomsHold, E::CustomsRelease) => Some(S::CustomsReleased),
        // Racked; on-site fix; moved to another position.
        (S::Delivered | S::Failed | S::Deployed, E::Deployed) => Some(S::Deployed),
        // Dead on arrival, or failed in service.
        (S::Delivered | S::Deployed, E::Failed) => Some(S::Failed),
        (S::Failed, E::RepairSent) => Some(S::InRepair),
        (S::InRepair, E::RepairBack) => Some(S::Deployed),
        // The RMA shipment held by customs on its way (its hold opens and closes; the
        // machine stays in repair).
        (S::InRepair, E::CustomsHold | E::CustomsRelease) => Some(S::InRepair),
        _ => None,
    };
    to.ok_or(Refused::Transition { state, event })
}

/// [`next`], also refusing a date before the machine's last event (`last`: its name,
/// `ordered` before any, and date).
pub fn step(state: State, last: (&str, Date), event: Event, date: Date) -> Result<State, Refused> {
    let to = next(state, event)?;
    if date < last.1 {
        return Err(Refused::Backwards {
            event,
            date,
            last: last.0.to_owned(),
            last_date: last.1,
        });
    }
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (state, event) pair: the legal ones listed here by hand, every other refused
    /// with a message naming the state.
    #[test]
    fn every_transition_legal_and_illegal() {
        use Event as E;
        use State as S;
        let legal = [
            (S::Ordered, E::Produced, S::Produced),
            (S::Ordered, E::Retired, S::Retired),
            (S::Produced, E::Shipped, S::Shipped),
            (S::Produced, E::Retired, S::Retired),
            (S::Shipped, E::CustomsHold, S::CustomsHold),
            (S::Shipped, E::Delivered, S::Delivered),
            (S::Shipped, E::Retired, S::Retired),
            (S::CustomsHold, E::CustomsRelease, S::CustomsReleased),
            (S::CustomsHold, E::Retired, S::Retired),
            (S::CustomsReleased, E::Delivered, S::Delivered),
            (S::CustomsReleased, E::Retired, S::Retired),
            (S::Delivered, E::Deployed, S::Deployed),
            (S::Delivered, E::Failed, S::Failed),
            (S::Delivered, E::Retired, S::Retired),
            (S::Deployed, E::Deployed, S::Deployed),
            (S::Deployed, E::Failed, S::Failed),
            (S::Deployed, E::Retired, S::Retired),
            (S::Failed, E::Deployed, S::Deployed),
            (S::Failed, E::RepairSent, S::InRepair),
            (S::Failed, E::Retired, S::Retired),
            (S::InRepair, E::RepairBack, S::Deployed),
            (S::InRepair, E::CustomsHold, S::InRepair),
            (S::InRepair, E::CustomsRelease, S::InRepair),
            (S::InRepair, E::Retired, S::Retired),
        ];
        let mut checked = 0;
        for s in State::ALL {
            for e in Event::ALL {
                let expect = legal.iter().find(|(a, b, _)| *a == s && *b == e);
                match (next(s, e), expect) {
                    (Ok(to), Some((_, _, want))) => assert_eq!(to, *want, "{s} --{e}-->"),
                    (Err(refused), None) => {
                        let text = refused.to_string();
                        assert!(
                            text.contains(&format!("the machine is {}", s.name())),
                            "{text}"
                        );
                        assert!(text.contains(e.name()), "{text}");
                    }
                    (got, want) => panic!("{s} --{e}-->: got {got:?}, want {want:?}"),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 100);
        assert_eq!(
            next(S::Shipped, E::Deployed).unwrap_err().to_string(),
            "cannot record `deployed`: the machine is shipped (next may be: customs_hold, delivered, retired)"
        );
        assert!(next(S::Retired, E::Produced)
            .unwrap_err()
            .to_string()
            .contains("nothing may follow"));
    }

    #[test]
    fn a_full_life_and_dates_that_go_backwards() {
        let d = |s: &str| s.parse::<Date>().unwrap();
        let life = [
            (Event::Produced, "2025-01-10"),
            (Event::Shipped, "2025-01-20"),
            (Event::CustomsHold, "2025-02-10"),
            (Event::CustomsRelease, "2025-07-10"),
            (Event::Delivered, "2025-07-15"),
            (Event::Deployed, "2025-07-16"),
            (Event::Failed, "2025-09-01"),
            (Event::RepairSent, "2025-09-03"),
            (Event::RepairBack, "2025-10-01"),
            (Event::Retired, "2028-01-01"),
        ];
        let mut state = State::Ordered;
        let mut last = ("ordered", d("2025-01-01"));
        for (e, day) in life {
            state = step(state, last, e, d(day)).unwrap();
            last = (e.name(), d(day));
        }
        assert_eq!(state, State::Retired);
        let e = step(
            State::Shipped,
            ("shipped", d("2025-03-10")),
            Event::Delivered,
            d("2025-03-01"),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "cannot record `delivered` on 2025-03-01: the machine's last event (shipped) was on 2025-03-10, and dates may not go backwards");
        // The same day is fine.
        assert!(step(
            State::Shipped,
            ("shipped", d("2025-03-10")),
            Event::Delivered,
            d("2025-03-10")
        )
        .is_ok());
        for s in State::ALL {
            assert_eq!(s.name().parse::<State>(), Ok(s));
        }
        for e in Event::ALL {
            assert_eq!(e.name().parse::<Event>(), Ok(e));
        }
        assert!("shiped".parse::<Event>().is_err());
    }
}
