#version 330
// Rain streaks or snowflakes over the image; they fall with time and slide with the camera's turn.
uniform float u_time;
uniform float u_kind;           // 1 rain, 2 snow
uniform float u_yaw;
uniform vec2 u_resolution;
in vec2 v_ndc;
out vec4 f_color;
float hash12(vec2 p) {
    vec3 p3 = fract(vec3(p.xyx) * 0.1031);
    p3 += dot(p3, p3.yzx + 33.33);
    return fract((p3.x + p3.y) * p3.z);
}
void main() {
    vec2 uv = (v_ndc * 0.5 + 0.5) * vec2(u_resolution.x / u_resolution.y, 1.0);
    uv.x += u_yaw * 0.6;
    float alpha = 0.0;
    vec3 color = vec3(0.0);
    if (u_kind < 1.5) {
        vec2 p = vec2(uv.x * 70.0, uv.y * 6.0 + u_time * 9.0);
        vec2 cell = floor(p);
        float streak = step(0.93, hash12(vec2(cell.x, floor(p.y + hash12(vec2(cell.x, 3.0)) * 7.0))));
        alpha = streak * step(abs(fract(p.x) - 0.5), 0.18) * 0.35;
        color = vec3(0.75, 0.8, 0.9);
    } else {
        vec2 p = vec2(uv.x * 28.0 + sin(u_time + uv.y * 4.0) * 0.4, uv.y * 16.0 + u_time * 1.6);
        vec2 cell = floor(p);
        vec2 f = fract(p) - vec2(hash12(cell), hash12(cell + 7.1)) * 0.6 - 0.2;
        alpha = step(0.75, hash12(cell + 3.3)) * smoothstep(0.12, 0.05, length(f)) * 0.9;
        color = vec3(1.0);
    }
    f_color = vec4(color, alpha);
}
