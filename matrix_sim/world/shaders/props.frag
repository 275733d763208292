// Props: flat colours, building windows (lit at night), lamps and car lights that glow.
uniform float u_prop_range;     // props end here (engine streams them), so they fade into the fog first
in vec3 v_world;
in vec3 v_normal;
in vec3 v_local;
in vec3 v_size;
in vec3 v_color;
flat in float v_kind;
out vec4 f_color;

void main() {
    vec3 n = normalize(v_normal);
    vec3 color = shade(v_color, n, v_world);
    if (v_kind > 0.5 && v_kind < 1.5 && abs(n.y) < 0.5) {          // building windows on the walls
        vec2 wall = abs(n.x) > 0.5 ? vec2(v_local.z * v_size.z, v_local.y * v_size.y)
                                   : vec2(v_local.x * v_size.x, v_local.y * v_size.y);
        vec2 cell = wall / vec2(2.6, 3.2);
        vec2 f = fract(cell);
        float window = step(0.25, f.x) * step(f.x, 0.75) * step(0.3, f.y) * step(f.y, 0.8) * step(1.0, wall.y);
        float lit = step(0.45, hash12(floor(cell) + floor(v_world.xz)));
        vec3 glass = mix(vec3(0.15, 0.22, 0.3) * (u_ambient + u_sun_color * 0.5), vec3(1.0, 0.85, 0.45), u_lights_on * lit);
        color = mix(color, glass, window);
    } else if (v_kind > 1.5) {                                         // lamps, headlights, tail lights
        vec3 glow = v_kind > 3.5 ? vec3(1.0, 0.1, 0.05) : vec3(1.0, 0.95, 0.75);
        color = mix(color, glow, max(u_lights_on, v_kind > 2.5 ? 0.6 : 0.0));
    }
    float fade = smoothstep(0.7 * u_prop_range, u_prop_range, length(v_world.xz - u_camera.xz));
    f_color = vec4(mix(fog(color, v_world), u_fog_color, fade), 1.0);
}
