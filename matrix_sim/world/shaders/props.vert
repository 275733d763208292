#version 330
// One unit mesh drawn once per prop instance: placed, scaled and turned about y by the instance row.
uniform mat4 u_view_proj;
in vec3 in_pos;
in vec3 in_normal;
in vec3 i_offset;
in vec3 i_size;
in float i_yaw;
in vec3 i_color;
in float i_kind;
out vec3 v_world;
out vec3 v_normal;
out vec3 v_local;
out vec3 v_size;
out vec3 v_color;
flat out float v_kind;
void main() {
    float c = cos(i_yaw), s = sin(i_yaw);
    mat3 rot = mat3(c, 0.0, -s, 0.0, 1.0, 0.0, s, 0.0, c);
    vec3 world = i_offset + rot * (in_pos * i_size);
    v_world = world;
    v_normal = rot * normalize(in_normal / i_size);
    v_local = in_pos;
    v_size = i_size;
    v_color = i_color;
    v_kind = i_kind;
    gl_Position = u_view_proj * vec4(world, 1.0);
}
