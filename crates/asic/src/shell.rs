//! The tokio shell around [`ChainDriver`]: moves its bytes over a link (an in-memory
//! duplex, a pseudo-terminal, a serial port) and gives it time.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

use crate::driver::{ChainConfig, ChainDriver, ChainEvent, Enumeration};
use crate::registers::{addr, frequency_ramp, RegisterError};

/// A byte link to a chain. Serial ports can change baud; other links ignore it.
pub trait Link: AsyncRead + AsyncWrite + Unpin + Send {
    fn set_baud(&mut self, _baud: u32) -> io::Result<()> {
        Ok(())
    }
}

impl Link for tokio::io::DuplexStream {}

impl Link for tokio_serial::SerialStream {
    fn set_baud(&mut self, baud: u32) -> io::Result<()> {
        use tokio_serial::SerialPort;
        self.set_baud_rate(baud).map_err(io::Error::other)
    }
}

/// Opens a serial port at the chips' power-on rate, 115200 8N1, no flow control. A
/// pseudo-terminal's slave path works too.
pub fn open_serial(path: &str) -> Result<tokio_serial::SerialStream, ChainError> {
    use tokio_serial::SerialPortBuilderExt;
    tokio_serial::new(path, 115_200)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::None)
        .stop_bits(tokio_serial::StopBits::One)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
        .map_err(|e| ChainError::Serial {
            path: path.to_string(),
            reason: e.to_string(),
        })
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("link to the chain failed: {0}")]
    Io(#[from] io::Error),
    #[error("cannot open serial port {path}: {reason}")]
    Serial { path: String, reason: String },
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error("the chain closed its link")]
    Closed,
}

/// Timing of bring-up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BringUp {
    /// How long the chain must stay quiet before enumeration is taken as complete.
    pub enumeration_quiet: Duration,
    /// Upper bound on enumeration.
    pub enumeration_max: Duration,
    /// Clock ramp: start frequency and the pause between 6.25 MHz steps (100 ms on real
    /// boards; emulated chains accept any).
    pub ramp_from_mhz: f64,
    pub ramp_step: Duration,
}

impl BringUp {
    pub const REAL: BringUp = BringUp {
        enumeration_quiet: Duration::from_millis(300),
        enumeration_max: Duration::from_secs(3),
        ramp_from_mhz: 56.25,
        ramp_step: Duration::from_millis(100),
    };
    pub const EMULATED: BringUp = BringUp {
        enumeration_quiet: Duration::from_millis(100),
        enumeration_max: Duration::from_secs(2),
        ramp_from_mhz: 56.25,
        ramp_step: Duration::from_millis(2),
    };
}

/// A chain on a link.
#[derive(Debug)]
pub struct Chain<L: Link> {
    link: L,
    driver: ChainDriver,
    tx: Vec<u8>,
    rx: Vec<u8>,
}

impl<L: Link> Chain<L> {
    pub fn new(link: L, config: ChainConfig) -> Chain<L> {
        Chain {
            link,
            driver: ChainDriver::new(config),
            tx: Vec::with_capacity(4096),
            rx: vec![0; 4096],
        }
    }

    pub fn driver(&self) -> &ChainDriver {
        &self.driver
    }

    pub fn driver_mut(&mut self) -> &mut ChainDriver {
        &mut self.driver
    }

    /// Writes whatever the driver has queued.
    pub async fn flush(&mut self) -> Result<(), ChainError> {
        self.tx.clear();
        self.driver.poll_transmit(&mut self.tx);
        if !self.tx.is_empty() {
            self.link.write_all(&self.tx).await?;
            self.link.flush().await?;
        }
        Ok(())
    }

    /// Reads once, waiting at most until `deadline`; returns how many bytes came.
    async fn read_until(&mut self, deadline: Instant) -> Result<usize, ChainError> {
        match timeout_at(deadline, self.link.read(&mut self.rx)).await {
            Err(_) => Ok(0),
            Ok(Ok(0)) => Err(ChainError::Closed),
            Ok(Ok(n)) => {
                self.driver.receive(&self.rx[..n]);
                Ok(n)
            }
            Ok(Err(e)) => Err(e.into()),
        }
    }

    /// Feeds the driver everything the chain sends for `d`.
    pub async fn pump_for(&mut self, d: Duration) -> Result<(), ChainError> {
        self.flush().await?;
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.read_until(end).await?;
        }
        Ok(())
    }

    /// Reads until the chain has been quiet for `quiet`, or `max` has passed.
    pub async fn pump_until_quiet(
        &mut self,
        quiet: Duration,
        max: Duration,
    ) -> Result<(), ChainError> {
        self.flush().await?;
        let end = Instant::now() + max;
        loop {
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            let n = self.read_until((now + quiet).min(end)).await?;
            if n == 0 {
                return Ok(());
            }
        }
    }

    /// The next event, waiting at most until `deadline`.
    pub async fn next_event(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<ChainEvent>, ChainError> {
        self.flush().await?;
        loop {
            if let Some(e) = self.driver.poll_event() {
                return Ok(Some(e));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            self.read_until(deadline).await?;
        }
    }

    /// Counts the chips that answer.
    pub async fn enumerate(&mut self, timing: &BringUp) -> Result<Enumeration, ChainError> {
        self.driver.start_enumeration();
        self.pump_until_quiet(timing.enumeration_quiet, timing.enumeration_max)
            .await?;
        Ok(self.driver.enumeration())
    }

    /// Addresses and configures the chips enumeration found, switches baud, and ramps the
    /// clock to the configured frequency.
    pub async fn bring_up(&mut self, timing: &BringUp) -> Result<(), ChainError> {
        let baud = self.driver.address_and_configure()?;
        self.flush().await?;
        if let Some(baud) = baud {
            self.link.set_baud(baud)?;
        }
        self.ramp_to_target(timing).await
    }

    /// Ramps the clock from where it is (from `timing.ramp_from_mhz` just after bring-up's
    /// configuration) to the configured target ([`ChainDriver::set_target_mhz`]), one
    /// 6.25 MHz step every `timing.ramp_step`. Nonces that arrive meanwhile wait as events.
    pub async fn ramp_to_target(&mut self, timing: &BringUp) -> Result<(), ChainError> {
        let from = self.driver.clock_mhz().unwrap_or(timing.ramp_from_mhz);
        let target = self.driver.config().frequency_mhz;
        for f in frequency_ramp(from, target) {
            self.driver.set_frequency(f)?;
            self.pump_for(timing.ramp_step).await?;
        }
        Ok(())
    }

    /// Sends a job; returns its id.
    pub async fn send_job(&mut self, header: &[u8; 80]) -> Result<u8, ChainError> {
        let id = self.driver.send_job(header);
        self.flush().await?;
        Ok(id)
    }

    /// Asks every chip for its error count and, on emulated chains, its temperature (real
    /// chips' temperature sensing is not decoded yet); answers arrive as events and land in
    /// the chip statistics.
    pub async fn request_health(&mut self) -> Result<(), ChainError> {
        if self.driver.config().is_emulated() {
            self.driver.read_all(addr::ANALOG_MUX);
        }
        self.driver.read_all(addr::ERROR_COUNT);
        self.flush().await
    }
}
