"""Headless GL rendering of posed MMD characters: the float UDP and the toon RGBA from one draw.

See :mod:`udpgen.render.renderer` for the draw, :mod:`udpgen.render.camera` for frames and cameras,
:mod:`udpgen.render.platform` for the GL context (``UDPGEN_GL=auto|egl|osmesa``) and
:mod:`udpgen.render.reference` for the numpy rasteriser the tests compare against.

Nothing here imports OpenGL at import time: the context (and PyOpenGL's platform) is chosen on first use.
"""
from __future__ import annotations

from .camera import (MMD_TO_WORLD, Camera, CameraSampler, OrthographicCamera, PerspectiveCamera, bounding_sphere,
                     camera_from_dict, look_at)
from .platform import GLContext, get_context, gl_available
from .renderer import EmptyRenderError, Renderer, RenderResult, RenderSettings

__all__ = ["MMD_TO_WORLD", "Camera", "CameraSampler", "OrthographicCamera", "PerspectiveCamera", "bounding_sphere",
           "camera_from_dict", "look_at", "GLContext", "get_context", "gl_available", "EmptyRenderError", "Renderer",
           "RenderResult", "RenderSettings"]
