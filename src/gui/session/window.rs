//! The display window of an image with gray levels (a DICOM frame, a 16-bit PNG or TIFF): what
//! the user sees the image through. It is per image (a new image starts at the file's window;
//! another frame of the same file keeps the one the user chose), and changing it never reruns
//! the network nor changes the map: only the image texture and the base image of Save/Copy.

use std::sync::Arc;

use crate::imaging::levels::{DisplayWindow, GrayLevels, Voi, Window};

use super::{Session, TaskKind};
use crate::gui::worker::{ImageOrigin, Work, display_texture};

/// Images up to this many pixels are rendered in the frame, larger ones on the worker. Measured
/// in a debug build (render and texture): 512 x 512 in 28 ms, 1024 x 1024 in 111 ms; an
/// optimised build is many times faster, so a 512 x 512 CT stays well within a frame there.
const RENDER_IN_FRAME_PIXELS: u64 = 512 * 512;

impl Session {
    /// The gray levels of the image on screen, if it has any.
    pub fn levels(&self) -> Option<&Arc<GrayLevels>> {
        self.image.as_ref()?.source.levels.as_ref()
    }

    /// The display window the user chose (`None`: the file's own).
    pub fn display_window(&self) -> Option<&DisplayWindow> {
        self.display.as_ref()
    }

    /// The window the image is shown through as centre and width: the chosen one, else the
    /// file's (min-max and VOI LUTs as their min-max window). What the numeric fields show and
    /// a drag starts from.
    pub fn shown_window(&self) -> Option<Window> {
        let levels = self.levels()?;
        let voi = self.display.as_ref().map_or(&levels.file_voi, |d| &d.voi);
        Some(match voi {
            Voi::Window(w) => *w,
            Voi::Lut(_) | Voi::MinMax => levels.min_max_window(),
        })
    }

    /// Whether the image is shown inverted relative to the file.
    pub fn display_inverted(&self) -> bool {
        self.display.as_ref().is_some_and(|d| d.invert)
    }

    /// Shows the image through `window` (keeping the inversion); nothing without gray levels.
    pub fn set_window(&mut self, window: Window, max_texture_side: usize) {
        if !window.is_valid() {
            return;
        }
        let invert = self.display_inverted();
        self.set_display(
            Some(DisplayWindow {
                voi: Voi::Window(window),
                invert,
            }),
            max_texture_side,
        );
    }

    /// Back to the file's own window (`None`), or its `index`th other window.
    pub fn reset_window(&mut self, index: Option<usize>, max_texture_side: usize) {
        let Some(levels) = self.levels() else {
            return;
        };
        let invert = self.display_inverted();
        let voi = match index.and_then(|i| levels.windows.get(i)) {
            Some(w) => Voi::Window(*w),
            None if invert => levels.file_voi.clone(),
            None => return self.set_display(None, max_texture_side),
        };
        self.set_display(Some(DisplayWindow { voi, invert }), max_texture_side);
    }

    /// Inverts the displayed grey levels (or stops inverting them).
    pub fn toggle_invert(&mut self, max_texture_side: usize) {
        let Some(levels) = self.levels() else {
            return;
        };
        let voi = self
            .display
            .as_ref()
            .map_or_else(|| levels.file_voi.clone(), |d| d.voi.clone());
        let invert = !self.display_inverted();
        let display = (invert || voi != levels.file_voi).then_some(DisplayWindow { voi, invert });
        self.set_display(display, max_texture_side);
    }

    /// Changes the window by a drag of `dx`, `dy` screen points (right, down): right widens,
    /// down raises the level, at a speed proportional to the image's range of values.
    pub fn drag_window(&mut self, dx: f32, dy: f32, max_texture_side: usize) {
        let (Some(levels), Some(window)) = (self.levels(), self.shown_window()) else {
            return;
        };
        let span = f64::from(levels.range.1 - levels.range.0).max(64.0);
        let per_point = span / 400.0;
        let window = Window {
            center: window.center + f64::from(dy) * per_point,
            width: (window.width + f64::from(dx) * per_point).max(1.0),
            function: window.function,
        };
        self.set_window(window, max_texture_side);
    }

    /// Shows the image through `display`: rendered now for a small image, on the worker for a
    /// large one. Never touches the analysis.
    fn set_display(&mut self, display: Option<DisplayWindow>, max_texture_side: usize) {
        let Some(image) = &self.image else {
            return;
        };
        if image.source.levels.is_none() || display == self.display {
            return;
        }
        self.display = display;
        let source = Arc::clone(&image.source);
        let pixels = u64::from(source.width()) * u64::from(source.height());
        if pixels <= RENDER_IN_FRAME_PIXELS {
            self.tasks.remove(&TaskKind::Render);
            let texture = display_texture(&source, self.display.as_ref(), max_texture_side);
            self.arrived.redisplay = Some(texture);
        } else if self.is_busy(TaskKind::Render) {
            // A drag asks every frame: render the latest window once the one in flight is done.
            self.render_again = Some(max_texture_side);
        } else {
            self.render_on_worker(max_texture_side);
        }
    }

    /// Renders the image through the display window on the worker.
    pub(super) fn render_on_worker(&mut self, max_texture_side: usize) {
        let Some(image) = &self.image else {
            return;
        };
        let label = format!("Windowing {}…", image.origin.name());
        let work = Work::RenderDisplay {
            image: Arc::clone(&image.source),
            display: self.display.clone(),
            max_texture_side,
        };
        self.submit(TaskKind::Render, label, work);
    }

    /// The frame on screen and the file's number of frames (1 and 1 for a single image).
    pub fn frame(&self) -> (u32, u32) {
        self.image
            .as_ref()
            .and_then(|i| i.source.dicom.as_ref())
            .map_or((1, 1), |d| (d.frame, d.frames.max(1)))
    }

    /// Opens frame `frame` (from 1) of the file on screen: a new image for the network, shown
    /// through the display window the user chose, if any.
    pub fn open_frame(&mut self, frame: u32, max_texture_side: usize) {
        let (current, frames) = self.frame();
        let Some(ImageOrigin::File(path)) = self.image.as_ref().map(|i| i.origin.clone()) else {
            return;
        };
        if frame == current || frame < 1 || frame > frames {
            return;
        }
        let origin = ImageOrigin::File(path);
        let label = format!("Opening {}, frame {frame}…", origin.name());
        let display = self.display.clone();
        let classifier = self.model.clone();
        self.submit(
            TaskKind::Image,
            label,
            Work::OpenImage {
                origin,
                frame,
                max_texture_side,
                display,
                classifier,
            },
        );
    }

    /// Moves `step` frames forward or back, staying within the file.
    pub fn step_frame(&mut self, step: i64, max_texture_side: usize) {
        let (current, frames) = self.frame();
        if frames < 2 {
            return;
        }
        let next = (i64::from(current) + step).clamp(1, i64::from(frames)) as u32;
        self.open_frame(next, max_texture_side);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::gui::session::Arrivals;
    use crate::gui::worker::Worker;

    /// Polls until the session is idle; the last texture that arrived for the same image.
    fn settle(session: &mut Session) -> Option<crate::gui::pyramid::Pyramid> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut texture = None;
        loop {
            let Arrivals { redisplay, .. } = session.poll();
            texture = redisplay.or(texture);
            if session.is_idle() {
                return texture;
            }
            assert!(Instant::now() < deadline, "{:?}", session.activity());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_large_image_is_windowed_on_the_worker_once_per_window_in_flight() {
        // A 16-bit ramp larger than what is rendered in the frame.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ramp16.png");
        let ramp = image::ImageBuffer::from_fn(700, 600, |x, y| image::Luma([(x * 60 + y) as u16]));
        ramp.save(&path).unwrap();
        let mut session = Session::new(Worker::spawn(|| {}).unwrap());
        session.open_image_file(path, 4096);
        settle(&mut session);
        let levels = Arc::clone(session.levels().expect("a 16-bit PNG has gray levels"));

        let first = Window::linear(10_000.0, 4_000.0);
        session.set_window(first, 4096);
        assert!(
            session.is_busy(TaskKind::Render),
            "not rendered on the worker"
        );
        // Changed again while that one renders: rendered once more, with the latest window.
        session.set_window(Window::linear(20_000.0, 500.0), 4096);
        let last = Window::linear(30_000.0, 9_000.0);
        session.set_window(last, 4096);
        let texture = settle(&mut session).expect("no texture arrived");
        let expected = levels.render(&Voi::Window(last), false);
        let full = &texture.levels()[0].image;
        let shown: Vec<u8> = full.pixels.iter().map(|c| c.r()).collect();
        assert_eq!(
            shown, expected,
            "the texture is not the image through {last}"
        );
        assert_eq!(session.shown_window(), Some(last));
    }
}
