//! Reading a vdi image (not yet implemented).

use crate::error::{Error, Result};
use crate::image::Layer;

/// Opens a vdi image for reading.
pub fn open(_filename: &str) -> Result<Layer> {
    Err(Error::Failed(
        "reading vdi images is not supported yet".to_string(),
    ))
}
