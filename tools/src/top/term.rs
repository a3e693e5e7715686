//! The terminal: raw mode and the alternate screen while the viewer runs (ratatui's
//! `try_init`, whose panic hook restores the terminal before the panic message),
//! restored on quit and on SIGTERM or SIGHUP (a flag the loop checks: the
//! handler only sets it), and keys converted for [`super::app`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::{DefaultTerminal, Frame};

use super::app::Key;

/// The viewer's terminal.
pub struct Terminal {
    inner: DefaultTerminal,
    stop: Arc<AtomicBool>,
    restored: bool,
    resized: bool,
}

impl Terminal {
    /// Takes over the terminal.
    pub fn start() -> std::io::Result<Terminal> {
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
            signal_hook::flag::register(sig, stop.clone())?;
        }
        let inner = ratatui::try_init()?;
        Ok(Terminal {
            inner,
            stop,
            restored: false,
            resized: false,
        })
    }

    /// Whether a SIGTERM or SIGHUP came.
    pub fn terminated(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Draws a frame.
    pub fn draw(&mut self, f: impl FnOnce(&mut Frame)) -> std::io::Result<()> {
        self.inner.draw(f).map(|_| ())
    }

    /// The next key within `wait`, if one comes (a resize is noted for
    /// [`Terminal::take_resized`]; other events are dropped).
    pub fn key(&mut self, wait: Duration) -> std::io::Result<Option<Key>> {
        if !event::poll(wait)? {
            return Ok(None);
        }
        Ok(match event::read()? {
            Event::Key(k) if k.kind != KeyEventKind::Release => convert(k.code, k.modifiers),
            Event::Resize(..) => {
                self.resized = true;
                None
            }
            _ => None,
        })
    }

    /// Whether the terminal changed size since the last call.
    pub fn take_resized(&mut self) -> bool {
        std::mem::take(&mut self.resized)
    }

    /// Gives the terminal back.
    pub fn stop(mut self) -> std::io::Result<()> {
        self.restored = true;
        ratatui::try_restore()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if !self.restored {
            let _ = ratatui::try_restore();
        }
    }
}

fn convert(code: KeyCode, mods: KeyModifiers) -> Option<Key> {
    Some(match code {
        KeyCode::Char('c') if mods.contains(KeyModifiers::CONTROL) => Key::Interrupt,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        KeyCode::Backspace => Key::Backspace,
        _ => return None,
    })
}
