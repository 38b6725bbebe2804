//! Curtailment on the miner: a power target for the whole machine, sleep and wake (the
//! cgminer API's privileged `powertarget`, `sleep` and `wake`).
//!
//! A target is planned with the devices' power models (emulated machines: the `asic`
//! crate's [`PowerModel`]). It is split over the devices in proportion to their nameplate
//! draw; each gets the fastest clock whose modeled draw is at or under its part (never
//! below its curve's lowest clock, never above nominal) and the voltage its curve gives for
//! that clock. Every device must have a model, or the target is refused: what a CPU or a
//! serial board draws is not known here, so no target over the machine could be kept.
//! Sleep stops every device's hashing (emulated machines: supply off; CPU threads: they
//! stop); wake brings each back, at the target in force.

use hashforge_asic::power::{Fit, Plan};
use hashforge_core::HashRate;

use crate::device::{Device, OperatingPoint, PowerControl, PowerModel};

/// The operator's power settings, as the miner keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct PowerState {
    /// The power target in force, in W.
    pub limit_w: Option<f64>,
    pub sleeping: bool,
}

/// Every device's power model, or why a power target cannot be kept.
fn models(devices: &[Box<dyn Device>]) -> Result<Vec<PowerModel>, String> {
    devices
        .iter()
        .enumerate()
        .map(|(i, d)| match d.power_control() {
            PowerControl::Model(m) => Ok(m),
            _ => Err(format!(
                "device {i} ({}) has no power model, so the miner cannot keep a power target \
                 (emulated machines have one; what CPU threads or a serial board draw is not \
                 known here)",
                d.info().name
            )),
        })
        .collect()
}

/// Each device's plan under `limit` (nominal without one): the limit split in proportion
/// to the devices' nameplate draw.
pub(crate) fn plan(models: &[PowerModel], limit: Option<f64>) -> Vec<Plan> {
    let nominal: f64 = models.iter().map(|m| m.nominal().watts).sum();
    models
        .iter()
        .map(|m| match limit {
            Some(w) => m.plan(w * m.nominal().watts / nominal),
            None => Plan {
                point: m.nominal(),
                fit: Fit::Nominal,
            },
        })
        .collect()
}

/// What the devices draw now, where every one of them says.
fn drawing(devices: &[Box<dyn Device>]) -> Option<f64> {
    devices
        .iter()
        .map(|d| d.telemetry().power_w)
        .sum::<Option<f64>>()
}

fn was(devices: &[Box<dyn Device>]) -> String {
    drawing(devices).map_or(String::new(), |w| format!(" (was {w:.0} W)"))
}

/// `3 chains at 467.50 MHz, 957 mV: expected 2497 W, 185.9 TH/s`, and a note where the
/// target could not be met exactly.
fn describe(models: &[PowerModel], plans: &[Plan], limit: Option<f64>) -> String {
    let parts: Vec<String> = models
        .iter()
        .zip(plans)
        .enumerate()
        .map(|(i, (m, p))| {
            let device = if models.len() > 1 {
                format!("device {i}: ")
            } else {
                String::new()
            };
            format!(
                "{device}{} chain{} at {:.2} MHz, {} mV",
                m.boards,
                if m.boards == 1 { "" } else { "s" },
                p.point.mhz,
                p.point.mv
            )
        })
        .collect();
    let watts: f64 = plans.iter().map(|p| p.point.watts).sum();
    let rate = HashRate::from_hs(plans.iter().map(|p| p.point.hashrate.as_hs()).sum());
    let mut out = format!("{}: expected {watts:.0} W, {rate:.1}", parts.join("; "));
    if limit.is_some() {
        let nominal: f64 = models.iter().map(|m| m.nominal().watts).sum();
        if plans.iter().all(|p| p.fit == Fit::Nominal) {
            out.push_str(&format!(
                ", nominal (the target is at or above the nominal {nominal:.0} W)"
            ));
        } else if plans.iter().any(|p| p.fit == Fit::BelowMinimum) {
            out.push_str(", over the target: the lowest clock the curve allows draws that");
        }
    }
    out
}

fn point_of(plans: &[Plan], i: usize) -> Option<OperatingPoint> {
    plans.get(i).map(|p| p.point)
}

/// `powertarget|WATTS` and `powertarget|none`.
pub(crate) fn set_target(
    devices: &[Box<dyn Device>],
    state: &mut PowerState,
    limit: Option<f64>,
) -> Result<String, String> {
    let models = models(devices)?;
    let plans = plan(&models, limit);
    let head = match limit {
        Some(w) => format!("power target {w} W"),
        None => "power target cleared".to_string(),
    };
    let was = was(devices);
    if !state.sleeping {
        for (i, d) in devices.iter().enumerate() {
            d.set_power(false, point_of(&plans, i))?;
        }
    }
    state.limit_w = limit;
    let mut msg = format!("{head}: {}", describe(&models, &plans, limit));
    if state.sleeping {
        msg.push_str("; the miner sleeps: this applies when it wakes");
    } else {
        msg.push_str(&was);
    }
    Ok(msg)
}

/// `sleep`: every device stops hashing (every one must be able to).
pub(crate) fn sleep(devices: &[Box<dyn Device>], state: &mut PowerState) -> Result<String, String> {
    if state.sleeping {
        return Ok("already asleep".into());
    }
    if let Some((i, d)) = devices
        .iter()
        .enumerate()
        .find(|(_, d)| d.power_control() == PowerControl::None)
    {
        return Err(format!(
            "device {i} ({}) cannot sleep: hashforge can neither cut its power nor stop its chips",
            d.info().name
        ));
    }
    let was = was(devices);
    for d in devices {
        d.set_power(true, None)?;
    }
    state.sleeping = true;
    let idle = devices
        .iter()
        .map(|d| match d.power_control() {
            PowerControl::Model(m) => Some(m.sleep_watts()),
            _ => None,
        })
        .sum::<Option<f64>>()
        .map_or(String::new(), |w| format!(", expected {w:.0} W"));
    Ok(format!("asleep: no device hashes{idle}{was}"))
}

/// `wake`: every device hashes again, at the target in force.
pub(crate) fn wake(devices: &[Box<dyn Device>], state: &mut PowerState) -> Result<String, String> {
    if !state.sleeping {
        return Ok("awake already: nothing to wake".into());
    }
    let models = models(devices).ok();
    let plans = models
        .as_deref()
        .map(|m| plan(m, state.limit_w))
        .unwrap_or_default();
    for (i, d) in devices.iter().enumerate() {
        d.set_power(false, point_of(&plans, i))?;
    }
    state.sleeping = false;
    let target = state.limit_w.map_or("no power target".to_string(), |w| {
        format!("power target {w} W")
    });
    Ok(match models {
        Some(models) => format!(
            "awake ({target}): {}",
            describe(&models, &plans, state.limit_w)
        ),
        None => format!("awake ({target})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashforge_asic::MachineProfile;

    fn model(name: &str, boards: usize) -> PowerModel {
        PowerModel {
            profile: name.parse::<MachineProfile>().unwrap(),
            boards,
        }
    }

    #[test]
    fn a_target_is_split_by_nameplate_and_each_part_kept() {
        let models = [model("s21pro", 3), model("bitaxe-gamma", 1)];
        let plans = plan(&models, Some(2000.0));
        let total: f64 = plans.iter().map(|p| p.point.watts).sum();
        assert!(total <= 2000.0 && total > 1950.0, "{total} W");
        assert!(plans.iter().all(|p| p.fit == Fit::Within));
        let text = describe(&models, &plans, Some(2000.0));
        assert!(text.starts_with("device 0: 3 chains at "), "{text}");
        assert!(text.contains("; device 1: 1 chain at "), "{text}");
        let nominal = plan(&models, None);
        assert_eq!(nominal[0].point, models[0].nominal());
        let over = describe(
            &models[..1],
            &plan(&models[..1], Some(9000.0)),
            Some(9000.0),
        );
        assert!(
            over.ends_with("nominal (the target is at or above the nominal 3510 W)"),
            "{over}"
        );
        let under = describe(&models[..1], &plan(&models[..1], Some(50.0)), Some(50.0));
        assert!(under.contains("over the target"), "{under}");
    }
}
