"""GLSL programs: sources from ``shaders/`` next to this module, compile, link, typed uniform setters."""
from __future__ import annotations

from importlib import resources

import numpy as np

from udpgen.errors import UdpgenError

__all__ = ["Program", "shader_source"]


def shader_source(name: str) -> str:
    """Text of ``udpgen/render/shaders/NAME`` (installed as package data)."""
    try:
        return resources.files("udpgen.render").joinpath("shaders", name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UdpgenError(f"shader {name} is missing from the udpgen installation (package data)") from None


def _compile(kind, source: str, name: str) -> int:
    from OpenGL import GL

    sh = GL.glCreateShader(kind)
    GL.glShaderSource(sh, source)
    GL.glCompileShader(sh)
    if not GL.glGetShaderiv(sh, GL.GL_COMPILE_STATUS):
        msg = GL.glGetShaderInfoLog(sh)
        GL.glDeleteShader(sh)
        text = msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)
        raise UdpgenError(f"shader {name} failed to compile: {text}")
    return sh


class Program:
    """A linked program. ``feedback`` names vertex outputs captured by transform feedback (interleaved).

    Uniform locations are looked up once; setting a uniform the linker optimised away is a no-op.
    """

    def __init__(self, vertex: str, fragment: str | None = None, feedback: tuple[str, ...] = ()):
        from OpenGL import GL

        shaders = [_compile(GL.GL_VERTEX_SHADER, shader_source(vertex), vertex)]
        if fragment is not None:
            shaders.append(_compile(GL.GL_FRAGMENT_SHADER, shader_source(fragment), fragment))
        self.id = GL.glCreateProgram()
        for sh in shaders:
            GL.glAttachShader(self.id, sh)
        if feedback:
            from OpenGL.GL import GLchar
            import ctypes

            names = (ctypes.POINTER(GLchar) * len(feedback))(
                *[ctypes.cast(ctypes.c_char_p(n.encode()), ctypes.POINTER(GLchar)) for n in feedback])
            GL.glTransformFeedbackVaryings(self.id, len(feedback), names, GL.GL_INTERLEAVED_ATTRIBS)
        if fragment is not None:
            GL.glBindFragDataLocation(self.id, 0, "o_udp")
            GL.glBindFragDataLocation(self.id, 1, "o_color")
        GL.glLinkProgram(self.id)
        for sh in shaders:
            GL.glDetachShader(self.id, sh)
            GL.glDeleteShader(sh)
        if not GL.glGetProgramiv(self.id, GL.GL_LINK_STATUS):
            msg = GL.glGetProgramInfoLog(self.id)
            raise UdpgenError(f"program {vertex}+{fragment} failed to link: "
                              f"{msg.decode(errors='replace') if isinstance(msg, bytes) else msg}")
        self._loc: dict[str, int] = {}

    def loc(self, name: str) -> int:
        from OpenGL import GL

        k = self._loc.get(name)
        if k is None:
            k = self._loc[name] = int(GL.glGetUniformLocation(self.id, name))
        return k

    def use(self) -> None:
        from OpenGL import GL

        GL.glUseProgram(self.id)

    # Typed setters (the program must be in use).
    def mat4(self, name: str, m: np.ndarray) -> None:
        from OpenGL import GL

        GL.glUniformMatrix4fv(self.loc(name), 1, GL.GL_TRUE, np.ascontiguousarray(m, np.float32))

    def vec(self, name: str, v) -> None:
        from OpenGL import GL

        v = np.asarray(v, np.float32).ravel()
        (GL.glUniform1f, GL.glUniform2f, GL.glUniform3f, GL.glUniform4f)[len(v) - 1](self.loc(name), *v.tolist())

    def int(self, name: str, i: int) -> None:
        from OpenGL import GL

        GL.glUniform1i(self.loc(name), int(i))

    def release(self) -> None:
        from OpenGL import GL

        if self.id:
            GL.glDeleteProgram(self.id)
            self.id = 0
