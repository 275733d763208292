#version 330
// Sky gradient, sun disk and stars, from the view ray of each pixel.
uniform mat4 u_inv_view_proj;
uniform vec3 u_sky_top;
uniform vec3 u_sky_horizon;
uniform vec3 u_sun_dir;
uniform vec3 u_sun_color;
uniform vec3 u_fog_color;
uniform float u_fog_amount;
uniform float u_lights_on;
in vec2 v_ndc;
out vec4 f_color;
float hash12(vec2 p) {
    vec3 p3 = fract(vec3(p.xyx) * 0.1031);
    p3 += dot(p3, p3.yzx + 33.33);
    return fract((p3.x + p3.y) * p3.z);
}
void main() {
    vec4 far = u_inv_view_proj * vec4(v_ndc, 1.0, 1.0);
    vec4 near = u_inv_view_proj * vec4(v_ndc, -1.0, 1.0);
    vec3 ray = normalize(far.xyz / far.w - near.xyz / near.w);
    float up = clamp(ray.y, 0.0, 1.0);
    vec3 color = mix(u_sky_horizon, u_sky_top, pow(up, 0.6));
    float sun = smoothstep(0.9985, 0.9995, dot(ray, normalize(u_sun_dir)));
    color += u_sun_color * sun * (1.0 - u_lights_on);
    if (u_lights_on > 0.5) {
        vec2 cell = floor(vec2(atan(ray.z, ray.x), ray.y) * vec2(120.0, 160.0));
        color += vec3(0.8) * step(0.995, hash12(cell)) * step(0.05, ray.y);
    }
    f_color = vec4(mix(color, u_fog_color, u_fog_amount), 1.0);
}
