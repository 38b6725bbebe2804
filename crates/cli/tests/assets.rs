//! `hashforge fleet import` and `hashforge fleet report` as an operator runs them: the
//! issue's case of 200 machines held by customs for five months, a bad file refused with
//! its line and nothing imported, and the tariff what-if by origin.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn hashforge(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hashforge"))
        .args(args)
        .env_remove("HASHFORGE_FLEET_DATABASE")
        .output()
        .expect("run hashforge");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn two_hundred_machines_held_five_months_through_the_cli() {
    let dir = std::env::temp_dir().join(format!("hashforge-cli-assets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("fleet.db").display());
    let mut assets = String::from(
        "serial,maker,model,nameplate_ths,nameplate_w,origin,hts_code,price_usd,order_id,ordered_on\n",
    );
    let mut events =
        String::from("serial,event,date,place,shipment,reason,fee_usd_per_unit_day,note\n");
    for i in 0..200 {
        assets.push_str(&format!(
            "T{i:03},Bitmain,T21,190,3610,CN,8543.70.99,2800,PO-5,2024-07-01\n"
        ));
        events.push_str(&format!(
            "T{i:03},produced,2024-08-01,,,,,\nT{i:03},shipped,2024-08-20,,SHP-9,,,\n\
             T{i:03},customs_hold,2024-09-15,LAX,SHP-9,FCC authorisation,3.50,\n\
             T{i:03},customs_release,2025-02-15,LAX,SHP-9,,,\n"
        ));
    }
    let a = write(&dir, "assets.csv", &assets);
    let e = write(&dir, "events.csv", &events);

    // A bad events file first: refused with its line, and nothing of it imported.
    let (ok, _, err) = hashforge(&["fleet", "import", "--assets", &a, "--database", &db]);
    assert!(ok, "{err}");
    let bad = write(
        &dir,
        "bad.csv",
        "serial,event,date,place,shipment,reason,fee_usd_per_unit_day,note\n\
         T000,produced,2024-08-01,,,,,\nT000,delivered,2024-08-02,,,,,\n",
    );
    let (ok, _, err) = hashforge(&["fleet", "import", "--events", &bad, "--database", &db]);
    assert!(!ok);
    assert!(
        err.contains("line 3: T000: cannot record `delivered`: the machine is produced"),
        "{err}"
    );
    assert!(err.contains("nothing was imported"), "{err}");

    let (ok, _, err) = hashforge(&["fleet", "import", "--events", &e, "--database", &db]);
    assert!(ok, "{err}");
    // Held 2024-09-15 to 2025-02-15: 153 days. Storage 200 x 153 x $3.50 = $107,100; cost
    // of delay at $50/PH/day: 200 x 0.19 PH x $50 x 153 = $290,700.
    let (ok, out, err) = hashforge(&[
        "fleet",
        "report",
        "customs",
        "--json",
        "--at",
        "2025-03-01",
        "--hashprice",
        "50",
        "--database",
        &db,
    ]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total"]["units"], 200);
    assert_eq!(v["total"]["unit_days"], 200 * 153);
    assert_eq!(v["total"]["storage"], 107_100.0);
    assert_eq!(v["total"]["cost_of_delay"], 290_700.0);
    assert_eq!(v["total"]["total_cost"], 397_800.0);
    assert_eq!(v["shipments"][0]["last_end"], "2025-02-15");
    // The table says the same.
    let (ok, out, _) = hashforge(&[
        "fleet",
        "report",
        "customs",
        "--at",
        "2025-03-01",
        "--hashprice",
        "50",
        "--database",
        &db,
    ]);
    assert!(ok);
    assert!(
        out.contains("$107,100.00") && out.contains("$290,700.00"),
        "{out}"
    );

    // The what-if: the same order from each origin on one day.
    let (ok, out, err) = hashforge(&[
        "fleet",
        "report",
        "tariffs",
        "--json",
        "--at",
        "2025-09-01",
        "--what-if-model",
        "S21 Pro",
        "--what-if-units",
        "100",
        "--what-if-price",
        "4000",
        "--database",
        &db,
    ]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let origins = v["what_if"]["origins"].as_array().unwrap();
    let rate = |o: &str| {
        origins.iter().find(|x| x["origin"] == o).unwrap()["duty_rate_pct"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(
        (rate("US"), rate("MY"), rate("ID"), rate("TH"), rate("CN")),
        (0.0, 21.6, 21.6, 21.6, 57.6)
    );
    // Entered 2024-09-15 from China at 27.6%: 200 x $2,800 x 27.6%.
    assert_eq!(v["total"]["duty"], 154_560.0);
    for report in ["repairs", "vendors", "economics", "leadtimes"] {
        let (ok, out, err) = hashforge(&[
            "fleet",
            "report",
            report,
            "--csv",
            "--at",
            "2025-03-01",
            "--hashprice",
            "50",
            "--energy",
            "0.06",
            "--database",
            &db,
        ]);
        assert!(ok, "{report}: {err}");
        // A header, and a row for every group (no repair tickets here: the header alone).
        let want = if report == "repairs" { 1 } else { 2 };
        assert!(out.lines().count() >= want, "{report}: {out}");
    }
    // No collector wrote here: nothing polled, nothing to flag.
    let (ok, out, err) = hashforge(&["fleet", "match", "--json", "--database", &db]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["unordered"].as_array().map(Vec::len), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
