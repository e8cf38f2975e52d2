//! Reading a vpc image (not yet implemented).

use crate::error::{Error, Result};
use crate::image::Layer;

/// Opens a vpc image for reading.
pub fn open(_filename: &str) -> Result<Layer> {
    Err(Error::Failed(
        "reading vpc images is not supported yet".to_string(),
    ))
}
