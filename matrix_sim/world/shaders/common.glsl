// Lighting and fog shared by every lit surface of the source world.
uniform vec3 u_sun_dir;
uniform vec3 u_sun_color;
uniform vec3 u_ambient;
uniform vec3 u_fog_color;
uniform float u_fog_density;
uniform vec3 u_camera;
uniform float u_lights_on;      // 1 at night: headlights, lamps and windows glow
uniform vec3 u_head_pos;        // headlight (drive) or torch (walk) origin
uniform vec3 u_head_dir;

float hash12(vec2 p) {
    vec3 p3 = fract(vec3(p.xyx) * 0.1031);
    p3 += dot(p3, p3.yzx + 33.33);
    return fract((p3.x + p3.y) * p3.z);
}

float vnoise(vec2 p) {
    vec2 i = floor(p), f = fract(p);
    vec2 u = f * f * (3.0 - 2.0 * f);
    return mix(mix(hash12(i), hash12(i + vec2(1, 0)), u.x), mix(hash12(i + vec2(0, 1)), hash12(i + vec2(1, 1)), u.x), u.y);
}

vec3 shade(vec3 albedo, vec3 n, vec3 world) {
    float diffuse = max(dot(n, normalize(u_sun_dir)), 0.0);
    vec3 light = u_ambient + u_sun_color * diffuse;
    if (u_lights_on > 0.5) {
        vec3 to = world - u_head_pos;
        float dist = length(to);
        float cone = smoothstep(0.80, 0.95, dot(to / max(dist, 1e-3), u_head_dir));
        light += vec3(1.0, 0.95, 0.8) * cone * 9.0 / (1.0 + 0.06 * dist * dist) * max(dot(n, -to / max(dist, 1e-3)), 0.25);
    }
    return albedo * light;
}

vec3 fog(vec3 color, vec3 world) {
    float d = length(world - u_camera);
    float f = 1.0 - exp(-u_fog_density * d);
    return mix(color, u_fog_color, clamp(f, 0.0, 1.0));
}
