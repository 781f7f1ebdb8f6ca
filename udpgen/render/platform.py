"""The headless OpenGL context: one per process, created lazily, behind one small interface.

Backends are pyrender's platform classes: ``egl`` (EGLPlatform on a device found by EGL device enumeration:
Mesa llvmpipe on a CPU machine, the GPU on NVIDIA; no display, no window system) and ``osmesa``
(OSMesaPlatform, Mesa's pure software path). Choose with the environment variable::

    UDPGEN_GL=auto|egl|osmesa      (default auto: EGL if a device initialises, else OSMesa)
    UDPGEN_GL_DEVICE=K             (EGL device index, default 0)

PyOpenGL binds its function pointers to one platform when ``OpenGL`` is first imported, so the choice is
made, and ``PYOPENGL_PLATFORM`` set, before that import; the EGL probe of ``auto`` uses ctypes only. If some
other code imported OpenGL first, its ``PYOPENGL_PLATFORM`` wins and only that backend is tried.

The context is created on first use in the process that uses it, and every renderer of the process shares
it; :func:`get_context` returns it. Worker processes must create their own: a process forked from one that
already had a context gets a UdpgenError (Mesa hangs in such a child), so start workers with the 'spawn' or
'forkserver' method, or create no Renderer in the parent before forking. A context is current in one
thread at a time: use each Renderer from the thread that created it. The context
renders into framebuffer objects only (EGL here is surfaceless), which the renderer owns.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import importlib.util
import os
import sys
import threading

from udpgen.errors import UdpgenError

__all__ = ["GLContext", "get_context", "gl_available", "BACKENDS", "INSTALL_HINT"]

BACKENDS = ("egl", "osmesa")
INSTALL_HINT = ("install Mesa's headless GL: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 "
                "(or the NVIDIA driver's EGL); choose a backend with UDPGEN_GL=egl|osmesa")
_EGL_PLATFORM_DEVICE_EXT = 0x313F

_LOST = ("the GL context cannot be made current: it was lost (another library terminated the shared EGL "
         "display, e.g. pyrender's OffscreenRenderer.delete()) or is current in another thread; create the "
         "Renderer again (one per thread)")
_lock = threading.Lock()
_context: "GLContext | None" = None
_context_pid: int | None = None
_failure: tuple[int, str] | None = None       # (pid, message) of a failed creation: not retried in that process


def _pyrender_platform(name: str):
    """pyrender's module ``pyrender.platforms.<name>``, without pyrender's package import when it is not
    loaded yet: pyrender/__init__ imports its whole scene graph and trimesh (~0.6 s in every process and
    worker), while the platform modules need only PyOpenGL and their sibling ``base``. They are loaded from
    pyrender's own files as a private package, ``udpgen.render._pyrender_platforms``."""
    if "pyrender" in sys.modules:
        return importlib.import_module(f"pyrender.platforms.{name}")
    package = "udpgen.render._pyrender_platforms"
    if package not in sys.modules:
        found = importlib.util.find_spec("pyrender")          # locates the package without running it
        if found is None or not found.submodule_search_locations:
            raise UdpgenError(f"pyrender is not installed (pip install pyrender-maintained); {INSTALL_HINT}")
        folder = os.path.join(found.submodule_search_locations[0], "platforms")
        spec = importlib.util.spec_from_file_location(package, os.path.join(folder, "__init__.py"),
                                                      submodule_search_locations=[folder])
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        spec.loader.exec_module(module)
    return importlib.import_module(f"{package}.{name}")


class GLContext:
    """A current OpenGL (>= 3.3 core) context of one backend.

    backend: 'egl' or 'osmesa'; device: the EGL device index (None for OSMesa); vendor, renderer, version:
    the GL strings; limits: the sizes the renderer checks its framebuffer against (max_texture_size,
    max_renderbuffer_size, max_viewport_dims (w, h), max_texture_buffer_size, max_draw_buffers).
    """

    def __init__(self, backend: str, device: int | None = None):
        self.lost = False
        self.backend = backend
        self.device = device
        if backend == "egl":
            egl = _pyrender_platform("egl")
            dev = egl.get_device_by_index(device or 0)
            self._platform = egl.EGLPlatform(1, 1, device=dev)
        else:
            # renders into our own FBOs, never its 1x1 buffer
            self._platform = _pyrender_platform("osmesa").OSMesaPlatform(1, 1)
        self._platform.init_context()
        self._platform.make_current()
        from OpenGL import GL

        self.vendor = _gl_string(GL.GL_VENDOR)
        self.renderer = _gl_string(GL.GL_RENDERER)
        self.version = _gl_string(GL.GL_VERSION)
        major = int(GL.glGetIntegerv(GL.GL_MAJOR_VERSION))
        minor = int(GL.glGetIntegerv(GL.GL_MINOR_VERSION))
        if (major, minor) < (3, 3):
            raise UdpgenError(f"OpenGL {major}.{minor} ({self.renderer}) is too old: udpgen.render needs 3.3 core")
        vp = GL.glGetIntegerv(GL.GL_MAX_VIEWPORT_DIMS)
        self.limits = {
            "max_texture_size": int(GL.glGetIntegerv(GL.GL_MAX_TEXTURE_SIZE)),
            "max_renderbuffer_size": int(GL.glGetIntegerv(GL.GL_MAX_RENDERBUFFER_SIZE)),
            "max_viewport_dims": (int(vp[0]), int(vp[1])),
            "max_texture_buffer_size": int(GL.glGetIntegerv(GL.GL_MAX_TEXTURE_BUFFER_SIZE)),
            "max_draw_buffers": int(GL.glGetIntegerv(GL.GL_MAX_DRAW_BUFFERS)),
        }

    def make_current(self) -> None:
        """Make this context current; UdpgenError if it is gone. Another library can destroy it: pyrender's
        ``OffscreenRenderer.delete()`` calls eglTerminate on the device's display, which EGL shares between
        every context of the process. :func:`get_context` then makes a new one; renderers built on the
        lost one must be built again."""
        if self.lost:
            raise UdpgenError(_LOST)
        try:
            self._platform.make_current()
        except Exception:  # noqa: BLE001 - EGLError, AssertionError, GLError
            self.lost = True
            raise UdpgenError(_LOST) from None

    def max_image_size(self) -> tuple[int, int]:
        """Largest (width, height) a render target may have on this context."""
        lim = self.limits
        side = min(lim["max_texture_size"], lim["max_renderbuffer_size"])
        return min(side, lim["max_viewport_dims"][0]), min(side, lim["max_viewport_dims"][1])

    def describe(self) -> dict:
        """JSON-ready description (for bench and sample metadata)."""
        return {"backend": self.backend, "device": self.device, "vendor": self.vendor, "renderer": self.renderer,
                "version": self.version, "limits": dict(self.limits)}

    def close(self) -> None:
        try:
            self._platform.delete_context()
        except Exception:   # noqa: BLE001 - tearing down a context that is already gone is not an error
            pass


def _gl_string(name) -> str:
    from OpenGL import GL

    s = GL.glGetString(name)
    return s.decode("ascii", "replace") if isinstance(s, bytes) else str(s)


def _requested() -> list[str]:
    want = os.environ.get("UDPGEN_GL", "auto").strip().lower() or "auto"
    if want not in ("auto",) + BACKENDS:
        raise UdpgenError(f"UDPGEN_GL={want!r} is not one of auto, egl, osmesa")
    if "OpenGL.platform" in sys.modules:
        # PyOpenGL is already bound to a platform; only that one can work in this process.
        bound = os.environ.get("PYOPENGL_PLATFORM", "").lower()
        if bound not in BACKENDS:
            raise UdpgenError(f"OpenGL was imported before the first udpgen Renderer, with PYOPENGL_PLATFORM="
                              f"{bound or 'unset'}; create the Renderer (or call udpgen.render.get_context()) "
                              "before importing OpenGL/pyrender, or set PYOPENGL_PLATFORM=egl|osmesa")
        if want not in ("auto", bound):
            raise UdpgenError(f"UDPGEN_GL={want} but OpenGL was already imported for {bound}")
        return [bound]
    return list(BACKENDS) if want == "auto" else [want]


def _device_index() -> int:
    raw = os.environ.get("UDPGEN_GL_DEVICE", "0")
    try:
        k = int(raw)
    except ValueError:
        raise UdpgenError(f"UDPGEN_GL_DEVICE={raw!r} is not an integer") from None
    if k < 0:
        raise UdpgenError(f"UDPGEN_GL_DEVICE={k} must be >= 0")
    return k


def probe_egl(device: int = 0) -> str | None:
    """Without PyOpenGL: can EGL initialise device ``device`` by enumeration? None if yes, else the reason."""
    name = ctypes.util.find_library("EGL") or "libEGL.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        return f"no libEGL ({e})"
    lib.eglGetProcAddress.restype = ctypes.c_void_p
    lib.eglGetProcAddress.argtypes = [ctypes.c_char_p]
    q_addr = lib.eglGetProcAddress(b"eglQueryDevicesEXT")
    d_addr = lib.eglGetProcAddress(b"eglGetPlatformDisplayEXT")
    if not q_addr or not d_addr:
        return "EGL has no device enumeration (EGL_EXT_device_enumeration / EGL_EXT_platform_device)"
    query = ctypes.CFUNCTYPE(ctypes.c_uint, ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int))(q_addr)
    get_display = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p)(d_addr)
    count = ctypes.c_int(0)
    if not query(0, None, ctypes.byref(count)) or count.value < 1:
        return "EGL found no devices"
    if device >= count.value:
        return f"EGL device {device} requested but only {count.value} found"
    devices = (ctypes.c_void_p * count.value)()
    if not query(count.value, devices, ctypes.byref(count)):
        return "eglQueryDevicesEXT failed"
    display = get_display(_EGL_PLATFORM_DEVICE_EXT, devices[device], None)
    if not display:
        return "eglGetPlatformDisplayEXT returned no display"
    lib.eglInitialize.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
    lib.eglTerminate.argtypes = [ctypes.c_void_p]
    major, minor = ctypes.c_int(), ctypes.c_int()
    if not lib.eglInitialize(display, ctypes.byref(major), ctypes.byref(minor)):
        return "eglInitialize failed on the device display"
    lib.eglTerminate(display)
    return None


def probe_osmesa() -> str | None:
    """Can libOSMesa be loaded? None if yes, else the reason."""
    name = ctypes.util.find_library("OSMesa") or "libOSMesa.so.8"
    try:
        ctypes.CDLL(name)
    except OSError as e:
        return f"no libOSMesa ({e})"
    return None


def _create() -> GLContext:
    reasons = []
    device = _device_index()
    for backend in _requested():
        why = probe_egl(device) if backend == "egl" else probe_osmesa()
        if why is None:
            if "OpenGL.platform" not in sys.modules:
                os.environ["PYOPENGL_PLATFORM"] = backend
            if os.environ.get("PYOPENGL_PLATFORM") != backend:
                reasons.append(f"{backend}: OpenGL is bound to {os.environ.get('PYOPENGL_PLATFORM')}")
                continue
            try:
                return GLContext(backend, device if backend == "egl" else None)
            except UdpgenError:
                raise
            except Exception as e:  # noqa: BLE001 - pyrender asserts, PyOpenGL raises many types
                why = f"{type(e).__name__}: {e}".strip().rstrip(":")
        reasons.append(f"{backend}: {why}")
    raise UdpgenError("no OpenGL context could be created (" + "; ".join(reasons) + "); " + INSTALL_HINT)


def get_context() -> GLContext:
    """The process's GL context, created (and made current) on first call; UdpgenError if none can be."""
    global _context, _context_pid, _failure
    pid = os.getpid()
    with _lock:
        if _context is not None and _context_pid == pid:
            try:
                _context.make_current()
                return _context
            except UdpgenError:
                pass            # lost: make a new one below
        if _failure is not None and _failure[0] == pid:
            raise UdpgenError(_failure[1])
        if _context is not None and _context_pid != pid:
            # Forked from a process that had a context: the driver's threads and locks did not come along
            # (Mesa then hangs in the first texture upload), so refuse instead of hanging.
            raise UdpgenError(f"this process was forked from process {_context_pid}, which had already created a "
                              "GL context; GL drivers do not survive fork. Start workers with multiprocessing's "
                              "'spawn' or 'forkserver' method, or create Renderers only inside the workers")
        try:
            ctx = _create()
        except UdpgenError as e:
            _failure = (pid, str(e))
            raise
        _context, _context_pid = ctx, pid
        return ctx


def gl_available() -> tuple[bool, str]:
    """(True, description) if a context exists or can be made in this process, else (False, reason)."""
    try:
        ctx = get_context()
    except UdpgenError as e:
        return False, str(e)
    return True, f"{ctx.backend}: {ctx.renderer} ({ctx.version})"
