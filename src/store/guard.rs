//! Panics inside redb become errors: redb may panic on a damaged file (an `unreachable!` in a
//! btree cursor, an `unwrap` of a `Utf8Error` while decoding a key), so every store call runs
//! under [`catch`], which turns such a panic into a message for
//! [`StoreError::Damaged`](super::StoreError::Damaged). The host's open runs its rebuild from
//! what the store read under it too.
//!
//! The process-wide panic hook is wrapped once: a panic inside [`catch`] on this thread is recorded
//! (message and location) instead of printed, since the caller reports it as an error; every
//! other panic goes to the previous hook unchanged.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// How many [`catch`] calls are active on this thread.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The last panic the hook recorded inside [`catch`], with its location.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) == 0 {
                return previous(info);
            }
            let at = info.location().map(|l| format!(" at {}:{}", short_path(l.file()), l.line())).unwrap_or_default();
            let text = format!("{}{at}", payload_text(info.payload()));
            CAUGHT.with(|c| *c.borrow_mut() = Some(text));
        }));
    });
}

/// A source path from the crate name on (`redb-4.6.0/src/tree_store/btree.rs`), not the
/// registry's absolute path.
fn short_path(file: &str) -> &str {
    file.find("redb-").map_or(file, |i| &file[i..])
}

fn payload_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_string()
    }
}

/// Runs `f`; a panic inside it is returned as `Err(text)` (its message and where it was raised)
/// instead of unwinding further.
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    DEPTH.with(|d| d.set(d.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    result.map_err(|payload| CAUGHT.with(|c| c.borrow_mut().take()).unwrap_or_else(|| payload_text(&*payload)))
}

#[cfg(test)]
mod tests {
    use super::catch;

    #[test]
    fn a_panic_becomes_its_message_and_location() {
        let err = catch(|| -> u32 { panic!("bad page {}", 7) }).unwrap_err();
        assert!(err.starts_with("bad page 7 at "), "{err}");
        assert!(err.contains("guard.rs"), "{err}");
        assert_eq!(catch(|| 5).unwrap(), 5);
        // Nested: the inner panic is reported by the inner catch; the outer one sees a value.
        let outer = catch(|| catch(|| -> () { panic!("inner") }).unwrap_err());
        assert!(outer.unwrap().starts_with("inner at "));
    }
}
