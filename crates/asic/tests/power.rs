//! The emulator's power model seen through the driver: a board clocked down by PLL writes
//! returns its clock's share of the nonces and draws what the model says, and a board
//! whose supply is cut answers nothing until it is powered and brought up again.
//!
//! Alone in its file, with its own pool, so no other test's boards share the workers
//! while it compares two rates.

use std::time::Duration;

use hashforge_asic::board_test;
use hashforge_asic::emulator::{EmulatedMachine, HashPool};
use hashforge_asic::shell::Link;
use hashforge_asic::{BringUp, Chain, ChainConfig, ChainEvent, MachineProfile, PowerModel};
use hashforge_sha256d::Scanner;
use tokio::time::Instant;

/// Valid nonces the chain returns over `d` (every one re-hashed by the driver).
async fn nonces_over<L: Link>(chain: &mut Chain<L>, d: Duration) -> u64 {
    let end = Instant::now() + d;
    let mut n = 0;
    while let Some(ev) = chain.next_event(end).await.unwrap() {
        if matches!(ev, ChainEvent::Nonce(_)) {
            n += 1;
        }
    }
    n
}

/// Lets the board's view catch up (it refreshes every 100 ms) and reads its draw.
async fn watts(machine: &EmulatedMachine) -> f64 {
    tokio::time::sleep(Duration::from_millis(250)).await;
    machine.power_watts()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_clocked_down_returns_its_clocks_share_of_the_nonces_and_draws_less() {
    let pool = HashPool::new(2, Scanner::detect());
    let profile: MachineProfile = "s21pro".parse().unwrap();
    let model = PowerModel { profile, boards: 1 };
    let (machine, mut links) = EmulatedMachine::spawn(profile, &[0], &[], &pool.handle());
    let mut chain = Chain::new(links.pop().unwrap(), ChainConfig::emulated(&profile, 20));
    assert_eq!(chain.enumerate(&BringUp::EMULATED).await.unwrap().found, 65);
    chain.bring_up(&BringUp::EMULATED).await.unwrap();
    assert_eq!(chain.driver().clock_mhz(), Some(590.0));
    chain.send_job(&board_test::test_header(3)).await.unwrap();
    let at_nominal = watts(&machine).await;
    assert!(
        (at_nominal - model.nominal().watts).abs() < 1e-6,
        "{at_nominal} W"
    );

    // 60% of the clock, through PLL writes, at the nominal voltage: 60% of the nonces
    // (the rest of the CPU rests). The clock goes down and up a few times and the windows
    // alternate, so a change in what the CPU gives the test weighs on both alike.
    let (mut nominal, mut slow) = (0, 0);
    let mut mhz = 0.0;
    for _ in 0..4 {
        for (target, count) in [(590.0, &mut nominal), (354.0, &mut slow)] {
            chain.driver_mut().set_target_mhz(target).unwrap();
            chain.ramp_to_target(&BringUp::EMULATED).await.unwrap();
            nonces_over(&mut chain, Duration::from_millis(100)).await;
            *count += nonces_over(&mut chain, Duration::from_millis(500)).await;
        }
        mhz = chain.driver().clock_mhz().unwrap();
    }
    assert!((mhz - 354.0).abs() < 1.0, "{mhz} MHz");
    assert!(nominal > 200, "{nominal} nonces at the nominal clock");
    let share = slow as f64 / nominal as f64;
    assert!(
        (0.35..0.85).contains(&share),
        "{slow} nonces at {mhz} MHz against {nominal} at 590: {share:.2}, about 0.60 expected"
    );
    let chips_only = |w: f64| w - profile.board_static_watts();
    let clocked_down = watts(&machine).await;
    assert!(
        (chips_only(clocked_down) / chips_only(at_nominal) - mhz / 590.0).abs() < 1e-9,
        "{clocked_down} W"
    );
    // The curve's voltage for that clock: what the model plans for it, exactly.
    machine.set_voltage_mv(profile.voltage_mv(mhz));
    assert!((watts(&machine).await - model.at(354.0).watts).abs() < 1e-6);

    // The supply off: no nonces, nobody answers, the board draws its sleep watts.
    machine.set_voltage_mv(0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    nonces_over(&mut chain, Duration::from_millis(200)).await;
    assert_eq!(nonces_over(&mut chain, Duration::from_secs(1)).await, 0);
    assert_eq!(watts(&machine).await, profile.sleep_watts_per_board);
    assert_eq!(chain.enumerate(&BringUp::EMULATED).await.unwrap().found, 0);

    // Back on: the chips come up as from power-on and take a bring-up again.
    machine.set_voltage_mv(profile.nominal_mv());
    chain.driver_mut().set_target_mhz(590.0).unwrap();
    assert_eq!(chain.enumerate(&BringUp::EMULATED).await.unwrap().found, 65);
    chain.bring_up(&BringUp::EMULATED).await.unwrap();
    chain.send_job(&board_test::test_header(4)).await.unwrap();
    assert!(nonces_over(&mut chain, Duration::from_secs(1)).await > 0);
    drop(machine);
}
