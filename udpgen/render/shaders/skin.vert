#version 330 core
// Skinning in the vertex shader (MMD semantics, the GPU twin of udpgen/rig/skin.py).
//
// Positions arrive in MMD's frame (left-handed, +Y up, MMD units); u_model_view already contains the
// MMD -> right-handed world flip (z negated), so everything after skinning is in the right-handed world.
// Bone data lives in a texture buffer (hundreds of bones do not fit a uniform array on every driver):
// four RGBA32F texels per bone b: rows 0..2 of its skinning matrix S_b = W_b T(-p_b) (3 x 4), then the
// unit quaternion (x, y, z, w) of S_b's rotation, which SDEF slerps.

layout(location = 0) in vec3 a_position;   // rest position after vertex morphs (MMD frame)
layout(location = 1) in vec3 a_normal;
layout(location = 2) in vec2 a_uv;         // PMX uv: v = 0 is the top image row
layout(location = 3) in vec3 a_landmark;   // canonical landmark in [0, 1]^3
layout(location = 4) in ivec4 a_bones;     // unused slots point at bone 0 with weight 0
layout(location = 5) in vec4 a_weights;    // BDEF1 (1,0,0,0); BDEF2/SDEF (w, 1-w, 0, 0); BDEF4/QDEF normalised
layout(location = 6) in int a_kind;        // 0 = linear blend (BDEF1/2/4, QDEF), 1 = SDEF
layout(location = 7) in vec3 a_sdef_c;     // SDEF centre C
layout(location = 8) in vec3 a_sdef_cr0;   // SDEF corrected centres (C + (C + R0 - Rw)) / 2, see skin.py
layout(location = 9) in vec3 a_sdef_cr1;
layout(location = 10) in float a_edge;     // per-vertex edge scale

uniform samplerBuffer u_bones;
uniform mat4 u_model_view;     // MMD model -> camera (OpenGL camera frame: looks down -Z)
uniform mat4 u_projection;
uniform float u_edge_px;       // outline half-width in pixels per unit of edge size; 0 = surface pass
uniform vec2 u_viewport;       // (width, height) in pixels

out vec3 v_landmark;
out vec2 v_uv;
out vec3 v_normal;             // camera frame, not normalised
out vec3 v_skinned;            // skinned position, MMD frame (captured by transform feedback in tests)

vec4 texel(int bone, int k) { return texelFetch(u_bones, 4 * bone + k); }

vec4 qslerp(vec4 a, vec4 b, float t) {
    // The shorter arc, as udpgen.rig.quat.slerp; nearly equal quaternions fall back to lerp.
    float d = dot(a, b);
    if (d < 0.0) { b = -b; d = -d; }
    float theta = acos(clamp(d, -1.0, 1.0));
    float s = sin(theta);
    vec4 q = (s < 1e-6) ? mix(a, b, t) : (sin((1.0 - t) * theta) * a + sin(t * theta) * b) / s;
    return normalize(q);
}

mat3 qmatrix(vec4 q) {
    float x = q.x, y = q.y, z = q.z, w = q.w;
    // GLSL matrices are column-major: each vec3 below is a column.
    return mat3(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + w * z), 2.0 * (x * z - w * y),
                2.0 * (x * y - w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z + w * x),
                2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y));
}

vec3 apply_rows(vec4 r0, vec4 r1, vec4 r2, vec4 p) { return vec3(dot(r0, p), dot(r1, p), dot(r2, p)); }

void main() {
    vec3 pos;
    vec3 nrm;
    if (a_kind == 1) {
        int b0 = a_bones.x, b1 = a_bones.y;
        float w0 = a_weights.x, w1 = a_weights.y;
        mat3 R = qmatrix(qslerp(texel(b0, 3), texel(b1, 3), w1));
        vec3 image0 = apply_rows(texel(b0, 0), texel(b0, 1), texel(b0, 2), vec4(a_sdef_cr0, 1.0));
        vec3 image1 = apply_rows(texel(b1, 0), texel(b1, 1), texel(b1, 2), vec4(a_sdef_cr1, 1.0));
        pos = R * (a_position - a_sdef_c) + w0 * image0 + w1 * image1;
        nrm = R * a_normal;
    } else {
        vec4 r0 = vec4(0.0), r1 = vec4(0.0), r2 = vec4(0.0);
        for (int k = 0; k < 4; ++k) {
            float w = a_weights[k];
            if (w != 0.0) {
                int b = a_bones[k];
                r0 += w * texel(b, 0);
                r1 += w * texel(b, 1);
                r2 += w * texel(b, 2);
            }
        }
        pos = apply_rows(r0, r1, r2, vec4(a_position, 1.0));
        nrm = apply_rows(r0, r1, r2, vec4(a_normal, 0.0));
    }
    v_skinned = pos;
    v_landmark = a_landmark;
    v_uv = a_uv;
    vec4 view = u_model_view * vec4(pos, 1.0);
    v_normal = mat3(u_model_view) * nrm;   // rigid view and a reflection: no inverse-transpose needed
    vec4 clip = u_projection * view;
    if (u_edge_px > 0.0) {
        // Inverted hull: push the vertex out along its screen-space normal by a width in pixels, so
        // outlines keep their thickness at any distance and image size (MMD's edge behaves the same).
        vec2 dir = (u_projection * vec4(v_normal, 0.0)).xy * u_viewport;
        float len = length(dir);
        if (len > 1e-12) {
            clip.xy += (dir / len) * (2.0 * u_edge_px * a_edge / u_viewport) * clip.w;
        }
    }
    gl_Position = clip;
}
