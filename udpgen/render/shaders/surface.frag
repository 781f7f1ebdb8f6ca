#version 330 core
// One fragment, two outputs: the UDP (landmark xyz, occupancy 1) and the toon colour.
//
// Both outputs come from the same fragment, so the UDP's occupancy equals the colour image's alpha > 0
// pixel for pixel: a fragment either writes both or is discarded (alpha below 1/255) and writes neither.
// The colour target blends premultiplied colour over what is below (the renderer un-premultiplies at
// readback); the UDP target is not blended: the nearest surface's landmark replaces what was there.
// Shading follows MMD's model: clamp(diffuse * light + ambient) * texture, sphere map, toon ramp.

in vec3 v_landmark;
in vec2 v_uv;
in vec3 v_normal;

layout(location = 0) out vec4 o_udp;
layout(location = 1) out vec4 o_color;

uniform bool u_edge_pass;        // outline (inverted hull) pass: flat edge colour
uniform vec4 u_edge_color;
uniform vec4 u_diffuse;          // RGBA after material morphs
uniform vec3 u_ambient;
uniform vec3 u_light_color;      // MMD's default light is 154/255 grey
uniform vec3 u_light_dir;        // direction the light travels, camera frame, unit
uniform bool u_has_texture;
uniform bool u_texture_alpha;    // take alpha from the texture (off for geometry-only comparisons)
uniform sampler2D u_texture;
uniform vec4 u_texture_tint;     // material morph factor
uniform int u_sphere_mode;       // 0 none, 1 multiply, 2 add
uniform sampler2D u_sphere;
uniform vec4 u_sphere_tint;
uniform bool u_has_toon;
uniform sampler2D u_toon;        // vertical ramp: top row lit, bottom row in shadow
uniform vec4 u_toon_tint;

const float MIN_ALPHA = 1.0 / 255.0;

void main() {
    vec4 color;
    if (u_edge_pass) {
        color = u_edge_color;
    } else {
        vec3 n = normalize(v_normal);
        if (!gl_FrontFacing) n = -n;              // two-sided: light the side the camera sees
        color = vec4(clamp(u_diffuse.rgb * u_light_color + u_ambient, 0.0, 1.0), u_diffuse.a);
        if (u_has_texture) {
            vec4 t = texture(u_texture, v_uv) * u_texture_tint;
            color.rgb *= t.rgb;
            if (u_texture_alpha) color.a *= t.a;
        }
        if (u_sphere_mode != 0) {
            // Sphere maps are looked up by the camera-frame normal (v down in the image).
            vec2 suv = vec2(n.x * 0.5 + 0.5, 0.5 - n.y * 0.5);
            vec3 s = texture(u_sphere, suv).rgb * u_sphere_tint.rgb;
            color.rgb = (u_sphere_mode == 1) ? color.rgb * s : color.rgb + s;
        }
        if (u_has_toon) {
            float lit = dot(n, -u_light_dir);
            vec3 toon = texture(u_toon, vec2(0.5, clamp(0.5 - 0.5 * lit, 0.0, 1.0))).rgb * u_toon_tint.rgb;
            color.rgb *= toon;
        }
        color = clamp(color, 0.0, 1.0);
    }
    if (color.a < MIN_ALPHA) discard;
    // clamped: perspective-correct interpolation of values at 0 or 1 rounds past them (1.0000013 seen)
    o_udp = vec4(clamp(v_landmark, 0.0, 1.0), 1.0);
    // Alpha is at least 1/255, so it never rounds to 0 in the 8-bit target: occupancy == alpha > 0.
    o_color = vec4(color.rgb, max(color.a, MIN_ALPHA));
}
